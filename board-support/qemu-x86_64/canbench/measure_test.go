package canbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/berth-io/berth/devices/can/canwire"
)

// The phases' sizes keep the whole VM run short under TCG (a few seconds
// of traffic in all).
const (
	// latencyRate is modest for every path under TCG: at 2,000 frames/s
	// (cmd/berth-bench's rate on the host) the broker path queues frames
	// in the VM (p50 6 ms, against 3.6 ms at 500).
	latencyRate = 500
	latencyWarm = 200
	latencyN    = 1_000
	tputWarm    = 200
	tputN       = 5_000
	// phaseTime bounds the sending of a phase's measured frames: a slow
	// path (a canwire Write waits for the plugin's answer) measures fewer.
	phaseTime = 2 * time.Second
	// window bounds the frames in flight in a throughput phase, below
	// every buffer on the paths (1 MiB socket buffers, the kernel's
	// backlog of 1,000, the broker's and canwire's 4,096), so that no
	// frame may be lost for want of room.
	window = 256
	leakN  = 50 // granted frames in the leak phase, each after a foreign one

	syncTimeout  = 5 * time.Second // a marker crossing a freshly opened path
	drainTimeout = 5 * time.Second // the last frame arriving after it was sent
)

// direction is one way across a path: frames written to tx arrive on rx.
type direction struct {
	tx, rx conn
	// grant: a grant narrows the path, so the leak phase runs: a
	// foreignID frame must not cross. refuse: tx refuses such a send (the
	// broker's send check, canwire.ErrPermissionDenied) rather than take
	// it and drop it (can-gw).
	grant, refuse bool
	// drain is how long the last frame may take to arrive after it was
	// sent before it counts as lost; 0 means drainTimeout.
	drain time.Duration
}

// figures are what one direction measured.
type figures struct {
	p50, p99 time.Duration // one-way latency at latencyRate
	latRate  float64       // the rate the latency phase's sender reached
	rate     float64       // frames/s with window frames in flight
}

// measure syncs d, then runs its latency and throughput phases and, on a
// granted direction, the leak phase.
func measure(d direction) (figures, error) {
	var f figures
	if err := d.sync(); err != nil {
		return f, err
	}
	lat, err := d.run(phase{warm: latencyWarm, n: latencyN, rate: latencyRate})
	if err != nil {
		return f, fmt.Errorf("latency phase: %w", err)
	}
	f.p50, f.p99, f.latRate = percentile(lat.lat, 0.50), percentile(lat.lat, 0.99), lat.sendRate
	tput, err := d.run(phase{warm: tputWarm, n: tputN})
	if err != nil {
		return f, fmt.Errorf("throughput phase: %w", err)
	}
	f.rate = tput.rate
	if d.grant {
		if _, err := d.run(phase{n: leakN, foreign: true}); err != nil {
			return f, fmt.Errorf("leak phase: %w", err)
		}
	}
	return f, nil
}

// sync sends markers until one arrives, so that a phase starts with the
// path open end to end (a broker session opens the device on its first
// frame's way). Markers still in flight are skipped by the phase.
func (d direction) sync() error {
	got := make(chan error, 1)
	go func() {
		b := make([]byte, recordLen)
		for {
			if _, err := d.rx.Read(b); err != nil {
				got <- err
				return
			}
			if binary.LittleEndian.Uint32(b) == markerID {
				got <- nil
				return
			}
		}
	}()
	deadline := time.Now().Add(syncTimeout)
	for {
		if err := write(d.tx, record(markerID, false, 0, 0)); err != nil {
			d.rx.SetReadDeadline(time.Now())
			return errors.Join(fmt.Errorf("send a marker: %w", err), <-got, d.rx.SetReadDeadline(time.Time{}))
		}
		select {
		case err := <-got:
			return err
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.rx.SetReadDeadline(time.Now())
			<-got
			return errors.Join(fmt.Errorf("no marker crossed within %s of opening", syncTimeout), d.rx.SetReadDeadline(time.Time{}))
		}
	}
}

// phase is one measurement: warm+n data frames numbered from 0 (fewer
// when the n take longer than phaseTime to send), paced at rate or with
// window in flight at most when rate is 0; with foreign, a foreignID
// frame is sent before each.
type phase struct {
	warm, n int
	rate    float64
	foreign bool
}

// outcome is what a phase measured of its n frames after the warm ones.
type outcome struct {
	rate     float64         // frames/s from the first one's send to the last one's arrival
	sendRate float64         // frames/s from the first one's send to the last one's
	lat      []time.Duration // one-way latency of each
}

// run runs p on d. Every frame sent must arrive once, in order, and no
// other frame but markers; a frame missing d.drain after the last send is
// lost.
func (d direction) run(p phase) (outcome, error) {
	total := p.warm + p.n
	lat := make([]time.Duration, total)
	var slots chan struct{}
	if p.rate == 0 {
		slots = make(chan struct{}, window)
	}
	var end atomic.Int64 // frames sent, once the sender stops early
	end.Store(int64(total))
	type result struct {
		got  int
		last time.Time
		err  error
	}
	done := make(chan result, 1)
	t0 := time.Now()
	go func() {
		got, last, err := read(d.rx, &end, t0, lat, slots)
		done <- result{got, last, err}
	}()

	var start, sent time.Time
	var sendErr error
	var res *result
	i := 0
send:
	for ; i < total; i++ {
		if i > p.warm && time.Since(start) > phaseTime {
			break
		}
		if p.rate > 0 {
			time.Sleep(time.Until(t0.Add(time.Duration(float64(i) / p.rate * float64(time.Second)))))
		} else {
			select {
			case slots <- struct{}{}:
			case r := <-done: // the reader stopped early
				res = &r
				break send
			}
		}
		if i == p.warm {
			start = time.Now()
		}
		if p.foreign {
			err := write(d.tx, record(foreignID, true, uint32(i), 0))
			switch {
			case d.refuse && !errors.Is(err, canwire.ErrPermissionDenied):
				sendErr = fmt.Errorf("send %#x outside the grant: got %v, want a refusal (%v)", foreignID, err, canwire.ErrPermissionDenied)
			case !d.refuse && err != nil:
				sendErr = fmt.Errorf("send %#x: %w", foreignID, err)
			}
			if sendErr != nil {
				break send
			}
		}
		if err := write(d.tx, record(dataID, true, uint32(i), uint32(time.Since(t0)/tick))); err != nil {
			sendErr = fmt.Errorf("send frame %d: %w", i, err)
			break
		}
		sent = time.Now()
	}
	if i < total && sendErr == nil && res == nil {
		// Stopped early: tell the reader, with a marker behind the last frame.
		end.Store(int64(i))
		sendErr = write(d.tx, record(markerID, false, 0, 0))
	}
	if d.drain == 0 {
		d.drain = drainTimeout
	}
	if res == nil {
		select {
		case r := <-done:
			res = &r
		case <-time.After(d.drain):
			d.rx.SetReadDeadline(time.Now())
			r := <-done
			r.err = fmt.Errorf("%d of %d frames lost (none more arrived within %s of the last send): %w", i-r.got, i, d.drain, r.err)
			res = &r
		}
	}
	if err := errors.Join(sendErr, res.err, d.rx.SetReadDeadline(time.Time{})); err != nil {
		return outcome{}, err
	}
	measured := float64(i - p.warm)
	return outcome{
		rate:     measured / res.last.Sub(start).Seconds(),
		sendRate: measured / sent.Sub(start).Seconds(),
		lat:      lat[p.warm:i],
	}, nil
}

// read reads data frames from rx, numbered from 0 and in order, until end
// of them arrived, skipping markers (the sender lowers end, then sends a
// marker, when it stops early). It records frame i's one-way latency in
// lat[i] and takes a slot from slots, when not nil, for each. It returns
// how many arrived and when the last did; any other frame, or one out of
// order, ends it with an error.
func read(rx conn, end *atomic.Int64, t0 time.Time, lat []time.Duration, slots <-chan struct{}) (int, time.Time, error) {
	b := make([]byte, recordLen)
	var last time.Time
	i := 0
	for int64(i) < end.Load() {
		k, err := rx.Read(b)
		now := time.Now()
		if err != nil {
			return i, last, fmt.Errorf("read: %w", err)
		}
		id := binary.LittleEndian.Uint32(b)
		switch {
		case k != recordLen:
			return i, last, fmt.Errorf("read a %d-byte record, want %d", k, recordLen)
		case id == markerID:
			continue
		case id == foreignID:
			return i, last, fmt.Errorf("frame %#x crossed: it is outside the grant", id)
		case id != dataID || b[4] != 8:
			return i, last, fmt.Errorf("unexpected frame % X", b)
		}
		if seq := int(binary.LittleEndian.Uint32(b[8:])); seq != i {
			return i, last, fmt.Errorf("frame %d arrived, want %d: frames lost, repeated or reordered", seq, i)
		}
		lat[i] = now.Sub(t0) - time.Duration(binary.LittleEndian.Uint32(b[12:]))*tick
		if slots != nil {
			<-slots
		}
		i++
		last = now
	}
	return i, last, nil
}

// percentile returns the nearest-rank q-quantile of ds; it sorts ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}
