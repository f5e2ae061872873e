package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/canwire"
)

// Frame IDs the injector uses: data frames carry their sequence number
// (big-endian) as their 8 data bytes; markers, sent before a round until
// every reader has read one, show that every stream is open end to end.
const (
	dataID   = 0x123
	markerID = 0x7FF
)

// Bounds on a phase's waits, so that a stuck path fails the bench rather
// than hanging it.
const (
	syncTimeout  = 5 * time.Second  // readers seeing the first marker
	drainTimeout = 2 * time.Second  // readers getting the last frame, after the injector stopped
	sendTimeout  = 30 * time.Second // flow-controlled readers that stopped taking frames
)

// via is how a reader reaches the bus.
type via int

// The kinds, in path order: a frame reaches a broker session after the
// plugin stream, and a device socket's client after a session.
const (
	viaPlugin  via = iota // the plugin stream: pluginhost's Host.Open, the baseline
	viaSession            // a broker session in this process, without the socket: where the broker's part ends
	viaSocket             // a canwire client on the device socket, as a container reads
)

func (v via) String() string {
	return [...]string{"plugin stream", "broker session", "device socket"}[v]
}

// phase is one measurement: readers on one path or several, frames
// injected at a rate or as fast as the slowest reader takes them.
type phase struct {
	// readers are opened in this order. When a phase has readers of
	// several kinds, each frame's latency on a reader is compared with
	// the first reader of each kind before its own, frame by frame
	// (phaseResult.Added).
	readers []via
	rate    float64 // frames/s; 0 for flow control (window frames in flight at most)
	window  int
	warm    int // frames sent first and not counted
	n       int // frames measured
}

// readerResult is what one reader got of a phase's measured frames,
// summed over the phase's rounds.
type readerResult struct {
	Via      string  `json:"via"`
	Got      int64   `json:"got"`
	Lost     int64   `json:"lost"`
	Disorder int64   `json:"out_of_order"` // frames older than one already read
	Rate     float64 `json:"frames_per_s"` // got / the time from the first measured frame sent to its last frame read
	// Where its frames were dropped: on the plugin stream the plugin
	// handle's count; through the broker its session's (the broker's
	// buffer) and its canwire client's.
	PluginDrops  uint64 `json:"plugin_drops,omitempty"`
	SessionDrops uint64 `json:"session_drops,omitempty"`
	ClientDrops  uint64 `json:"client_drops,omitempty"`

	secs float64
}

// phaseResult is a phase's outcome, summed over its rounds.
type phaseResult struct {
	Rounds   int            `json:"rounds"`
	Measured int            `json:"measured"`        // frames counted, per reader
	InRate   float64        `json:"in_frames_per_s"` // measured frames / the time it took to send them
	Readers  []readerResult `json:"readers"`
	// RoundRates are the slowest reader's rate in each round, and
	// MedianRate their median: a round the machine stalled in moves it
	// less than it moves the sums.
	RoundRates []float64 `json:"round_frames_per_s"`
	MedianRate float64   `json:"median_round_frames_per_s"`
	// DeviceDrops are frames the plugin process dropped (vcan hub queue,
	// stream buffer) during rounds with losses, as its stats report them.
	DeviceDrops uint64 `json:"plugin_process_drops"`
	// Latency is from the hub's bus time to the reader's Recv returning,
	// by reader kind (via's String), over every reader of the kind.
	Latency map[string]latency `json:"latency_us"`
	// Added is, for a phase with several kinds of reader, "A - B" for
	// each kind B before A in path order: a kind A reader's latency
	// minus the first kind B reader's, frame by frame, over every kind
	// A reader.
	Added map[string]latency `json:"added_latency_us,omitempty"`
	// CPU time per measured frame, in µs: the plugin process's and this
	// process's (injector, broker, socket server and readers).
	PluginCPUus float64 `json:"plugin_cpu_us_per_frame"`
	BenchCPUus  float64 `json:"bench_cpu_us_per_frame"`

	sendSecs            float64
	pluginCPU, benchCPU time.Duration
	lat, added          map[string][]time.Duration
}

type latency struct {
	Min float64 `json:"min"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// finish computes the rates, CPU and percentiles from the sums.
func (p *phaseResult) finish() {
	p.InRate = ratio(float64(p.Measured), p.sendSecs)
	for i := range p.Readers {
		r := &p.Readers[i]
		r.Rate = ratio(float64(r.Got), r.secs)
	}
	p.MedianRate = median(p.RoundRates)
	p.PluginCPUus = ratio(float64(p.pluginCPU.Microseconds()), float64(p.Measured))
	p.BenchCPUus = ratio(float64(p.benchCPU.Microseconds()), float64(p.Measured))
	p.Latency = map[string]latency{}
	for k, ds := range p.lat {
		p.Latency[k] = percentiles(ds)
	}
	if len(p.added) > 0 {
		p.Added = map[string]latency{}
		for k, ds := range p.added {
			p.Added[k] = percentiles(ds)
		}
	}
}

// of returns the latency of readers of kind v.
func (p *phaseResult) of(v via) latency { return p.Latency[v.String()] }

// addedOf returns the latency of kind a readers minus kind b's.
func (p *phaseResult) addedOf(a, b via) latency { return p.Added[a.String()+" - "+b.String()] }

// minRate is the slowest reader's delivered rate; maxLost the most any
// reader lost.
func (p *phaseResult) minRate() float64 {
	if len(p.Readers) == 0 {
		return 0
	}
	m := p.Readers[0].Rate
	for _, r := range p.Readers[1:] {
		m = min(m, r.Rate)
	}
	return m
}

func (p *phaseResult) maxLost() int64 {
	var m int64
	for _, r := range p.Readers {
		m = max(m, r.Lost)
	}
	return m
}

// reader reads one stream for one phase and keeps what it got of the
// measured sequence numbers lo..hi.
type reader struct {
	via      via
	lo, hi   uint64
	progress chan struct{} // a token after each batch, for flow control

	synced  atomic.Bool   // a marker arrived
	highest atomic.Uint64 // the highest sequence number read
	done    chan struct{} // closed when run returns

	// Valid once done is closed.
	got, disorder int64
	last          time.Time
	lat           []time.Duration // by seq-lo; -1 for a frame not read
	err           error
}

// newReader returns a reader of the phase whose frames are first..hi and
// measured from lo.
func newReader(v via, first, lo, hi uint64, progress chan struct{}) *reader {
	rd := &reader{via: v, lo: lo, hi: hi, progress: progress, done: make(chan struct{}), lat: make([]time.Duration, hi-lo+1)}
	for i := range rd.lat {
		rd.lat[i] = -1
	}
	rd.highest.Store(first)
	return rd
}

// run reads s until the last measured frame arrives or s ends.
func (rd *reader) run(s can.Stream) {
	defer close(rd.done)
	var prev uint64
	for {
		frames, err := s.Recv()
		now := time.Now()
		if err != nil {
			rd.err = err
			return
		}
		for _, f := range frames {
			if f.ID == markerID {
				rd.synced.Store(true)
				continue
			}
			if f.ID != dataID || len(f.Data) != 8 {
				continue
			}
			seq := binary.BigEndian.Uint64(f.Data)
			if seq > rd.highest.Load() {
				rd.highest.Store(seq)
			}
			if seq < rd.lo || seq > rd.hi {
				continue
			}
			if seq <= prev {
				rd.disorder++
				continue
			}
			prev = seq
			rd.got++
			rd.last = now
			rd.lat[seq-rd.lo] = now.Sub(f.Timestamp)
			if seq == rd.hi {
				return
			}
		}
		select {
		case rd.progress <- struct{}{}:
		default:
		}
	}
}

// open opens a bus the way v says.
func (r *canRig) open(ctx context.Context, v via) (can.Bus, error) {
	switch v {
	case viaPlugin:
		return r.host.Open(ctx, canDevice)
	case viaSession:
		return r.broker.Open(ctx, canContainer, r.grant)
	default:
		return canwire.OpenBus(ctx, r.devSock, canGrant)
	}
}

// run runs one round of phase p and adds its outcome to res.
func (r *canRig) run(ctx context.Context, p phase, res *phaseResult) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lo := r.seq + uint64(p.warm)
	hi := lo + uint64(p.n) - 1
	progress := make(chan struct{}, 1)

	var readers []*reader
	var buses []can.Bus
	defer func() {
		cancel()
		for _, b := range buses {
			b.Close()
		}
		for _, rd := range readers {
			<-rd.done
		}
	}()
	for _, v := range p.readers {
		bus, err := r.open(ctx, v)
		if err != nil {
			return fmt.Errorf("open a reader on the %s: %w", v, err)
		}
		buses = append(buses, bus)
		s, err := bus.Receive(rctx)
		if err != nil {
			return fmt.Errorf("receive on the %s: %w", v, err)
		}
		rd := newReader(v, r.seq, lo, hi, progress)
		readers = append(readers, rd)
		go rd.run(s)
	}
	if err := r.sync(ctx, readers); err != nil {
		return err
	}

	plugin0, err := procCPU(r.pid)
	if err != nil {
		return err
	}
	self0 := selfCPU()
	sendStart, sendEnd, err := r.inject(ctx, p, hi, readers, progress)
	if err != nil {
		return err
	}
	drain := time.NewTimer(drainTimeout)
	defer drain.Stop()
	for _, rd := range readers {
		select {
		case <-rd.done:
		case <-drain.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	plugin1, err := procCPU(r.pid)
	if err != nil {
		return err
	}
	res.pluginCPU += plugin1 - plugin0
	res.benchCPU += selfCPU() - self0
	res.Rounds++
	res.Measured += p.n
	res.sendSecs += sendEnd.Sub(sendStart).Seconds()

	// Where frames were dropped, before the readers go: each handle's
	// count (a canwire client's includes its session's), and the
	// broker's count per session, in open order.
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	handle := make([]uint64, len(buses))
	for i, b := range buses {
		if c, err := b.Counters(cctx); err == nil {
			handle[i] = c.Drops
		}
	}
	var session []uint64 // of the broker's readers, in open order
	for _, d := range r.broker.Stats() {
		for _, s := range d.Sessions {
			session = append(session, s.Dropped)
		}
	}
	cancel()
	for _, b := range buses {
		b.Close()
	}
	if len(res.Readers) == 0 {
		res.Readers = make([]readerResult, len(readers))
		res.lat, res.added = map[string][]time.Duration{}, map[string][]time.Duration{}
	}
	first := map[via]*reader{} // the first reader of each kind
	lossy := false
	slowestRate := math.Inf(1)
	for i, rd := range readers {
		<-rd.done
		if rd.err != nil && !errors.Is(rd.err, context.Canceled) && !errors.Is(rd.err, can.ErrClosed) {
			return fmt.Errorf("reader %d (%s): %w", i+1, rd.via, rd.err)
		}
		rr := &res.Readers[i]
		rr.Via = rd.via.String()
		rr.Got += rd.got
		rr.Lost += int64(p.n) - rd.got
		rr.Disorder += rd.disorder
		rate := 0.0
		if rd.got > 0 {
			secs := rd.last.Sub(sendStart).Seconds()
			rr.secs += secs
			rate = ratio(float64(rd.got), secs)
		}
		slowestRate = min(slowestRate, rate)
		switch {
		case rd.via == viaPlugin:
			rr.PluginDrops += handle[i]
		case len(session) > 0:
			rr.SessionDrops += session[0]
			rr.ClientDrops += handle[i] - min(handle[i], session[0])
			session = session[1:]
		}
		lossy = lossy || rd.got < int64(p.n)
		if first[rd.via] == nil {
			first[rd.via] = rd
		}
		k := rd.via.String()
		for _, l := range rd.lat {
			if l >= 0 {
				res.lat[k] = append(res.lat[k], l)
			}
		}
	}
	res.RoundRates = append(res.RoundRates, slowestRate)
	for _, rd := range readers {
		for v, other := range first {
			if v >= rd.via {
				continue
			}
			k := rd.via.String() + " - " + v.String()
			for j, l := range rd.lat {
				if l >= 0 && other.lat[j] >= 0 {
					res.added[k] = append(res.added[k], l-other.lat[j])
				}
			}
		}
	}
	if lossy {
		n, err := r.deviceDrops(ctx)
		if err != nil {
			return err
		}
		res.DeviceDrops += n
	}
	return nil
}

// deviceDrops asks the plugin for its counters and returns the frames it
// dropped on the bus since the last call.
func (r *canRig) deviceDrops(ctx context.Context) (uint64, error) {
	c, ok := r.host.Counters(ctx)[canDevice]
	if !ok {
		return 0, fmt.Errorf("the vcan plugin gave no counters for %s", canDevice)
	}
	n := c[can.CounterDrops]
	delta := n - min(n, r.drops)
	r.drops = n
	return delta, nil
}

// sync sends markers until every reader has read one, so that the phase
// starts with every stream open end to end.
func (r *canRig) sync(ctx context.Context, readers []*reader) error {
	deadline := time.Now().Add(syncTimeout)
	for {
		if err := r.tx.Send(ctx, can.Frame{ID: markerID}); err != nil {
			return fmt.Errorf("inject a marker: %w", err)
		}
		n := 0
		for _, rd := range readers {
			if rd.synced.Load() {
				n++
			}
		}
		if n == len(readers) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d readers saw no frame within %s of opening", len(readers)-n, len(readers), syncTimeout)
		}
		if err := pause(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
}

// inject sends the phase's frames, r.seq through hi, paced at p.rate or
// with at most p.window frames ahead of the slowest reader. It returns
// when the first and the last measured frame were sent.
func (r *canRig) inject(ctx context.Context, p phase, hi uint64, readers []*reader, progress chan struct{}) (start, end time.Time, err error) {
	lo := hi - uint64(p.n) + 1
	t0 := time.Now()
	deadline := t0.Add(sendTimeout)
	first := r.seq
	for seq := first; seq <= hi; seq++ {
		if p.rate > 0 {
			due := t0.Add(time.Duration(float64(seq-first) / p.rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			if ctx.Err() != nil {
				return start, end, ctx.Err()
			}
		} else {
			for seq-slowest(readers) > uint64(p.window) {
				select {
				case <-progress:
				case <-time.After(10 * time.Millisecond): // a reader whose frames were lost sends no token
				case <-ctx.Done():
					return start, end, ctx.Err()
				}
				if time.Now().After(deadline) {
					return start, end, fmt.Errorf("readers stalled at %d of %d frames", slowest(readers)-first, hi-first+1)
				}
			}
		}
		if seq == lo {
			start = time.Now()
		}
		data := make([]byte, 8)
		binary.BigEndian.PutUint64(data, seq)
		if err := r.tx.Send(ctx, can.Frame{ID: dataID, Data: data}); err != nil {
			return start, end, fmt.Errorf("inject frame %d: %w", seq, err)
		}
	}
	r.seq = hi + 1
	return start, time.Now(), nil
}

// slowest is the lowest of the readers' highest sequence numbers.
func slowest(readers []*reader) uint64 {
	m := readers[0].highest.Load()
	for _, rd := range readers[1:] {
		m = min(m, rd.highest.Load())
	}
	return m
}

// percentiles returns the minimum, p50, p99 and maximum of ds in µs; it
// sorts ds.
func percentiles(ds []time.Duration) latency {
	if len(ds) == 0 {
		return latency{}
	}
	slices.Sort(ds)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
	at := func(q float64) float64 { // nearest rank
		i := int(math.Ceil(q*float64(len(ds)))) - 1
		return us(ds[min(max(i, 0), len(ds)-1)])
	}
	return latency{Min: us(ds[0]), P50: at(0.50), P99: at(0.99), Max: us(ds[len(ds)-1])}
}

// procCPU is the user and system CPU time process pid has used.
func procCPU(pid int) (time.Duration, error) {
	_, f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	// utime and stime are fields 14 and 15 of stat, in clock ticks of
	// 1/100 s (USER_HZ) on Linux; f starts at field 3.
	var ticks int64
	for _, s := range f[11:13] {
		var n int64
		if _, err := fmt.Sscan(s, &n); err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// selfCPU is the user and system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
