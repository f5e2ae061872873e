package devices

import (
	"context"
	"slices"
	"sync"
)

// Roster holds a plugin's current device set and serves it as fingerprint
// streams: the part of [Plugin.Fingerprint] every plugin would otherwise
// write itself. A plugin calls Set whenever its devices change (at
// configure, on hot-plug, on failure or recovery) and implements
// Fingerprint as `return r.Watch(ctx), nil`.
//
// The zero Roster is ready to use and holds no fingerprint yet. Its
// methods are safe for concurrent use.
type Roster struct {
	mu      sync.Mutex
	current *Fingerprint
	gen     uint64
	changed chan struct{} // closed and replaced on every Set
	closed  bool
}

// Set replaces the device set and wakes every watcher. The devices are
// copied.
func (r *Roster) Set(devs ...Device) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fp := Fingerprint{Devices: make([]Device, len(devs))}
	for i, d := range devs {
		d.Attributes = cloneMap(d.Attributes)
		fp.Devices[i] = d
	}
	r.current = &fp
	r.gen++
	r.wakeLocked()
}

// Update changes the device with d.ID (or adds it) and wakes every watcher.
func (r *Roster) Update(d Device) {
	r.mu.Lock()
	var devs []Device
	if r.current != nil {
		devs = slices.Clone(r.current.Devices)
	}
	r.mu.Unlock()
	i := slices.IndexFunc(devs, func(x Device) bool { return x.ID == d.ID })
	if i < 0 {
		devs = append(devs, d)
	} else {
		devs[i] = d
	}
	r.Set(devs...)
}

// Current returns the latest fingerprint and whether there is one.
func (r *Roster) Current() (Fingerprint, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current == nil {
		return Fingerprint{}, false
	}
	return cloneFingerprint(*r.current), true
}

// Close ends every stream with [ErrClosed] once it has delivered the last
// fingerprint. Safe to call twice.
func (r *Roster) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.wakeLocked()
}

func (r *Roster) wakeLocked() {
	if r.changed != nil {
		close(r.changed)
	}
	r.changed = make(chan struct{})
}

// Watch returns a stream that delivers the current fingerprint (as soon as
// there is one) and then every later one. Fingerprints set faster than the
// reader reads are coalesced: a reader always gets the latest set, never a
// stale one. The stream ends with ctx.Err() when ctx ends.
func (r *Roster) Watch(ctx context.Context) FingerprintStream {
	return &rosterStream{r: r, ctx: ctx}
}

type rosterStream struct {
	r    *Roster
	ctx  context.Context
	seen uint64
}

func (s *rosterStream) Recv() (Fingerprint, error) {
	for {
		if err := s.ctx.Err(); err != nil {
			return Fingerprint{}, err
		}
		s.r.mu.Lock()
		if s.r.current != nil && s.r.gen != s.seen {
			s.seen = s.r.gen
			fp := cloneFingerprint(*s.r.current)
			s.r.mu.Unlock()
			return fp, nil
		}
		if s.r.closed {
			s.r.mu.Unlock()
			return Fingerprint{}, ErrClosed
		}
		if s.r.changed == nil {
			s.r.changed = make(chan struct{})
		}
		ch := s.r.changed
		s.r.mu.Unlock()
		select {
		case <-ch:
		case <-s.ctx.Done():
			return Fingerprint{}, s.ctx.Err()
		}
	}
}

func cloneFingerprint(fp Fingerprint) Fingerprint {
	out := Fingerprint{Devices: make([]Device, len(fp.Devices))}
	for i, d := range fp.Devices {
		d.Attributes = cloneMap(d.Attributes)
		out.Devices[i] = d
	}
	return out
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return nil
	}
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
