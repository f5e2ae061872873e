package canplugin

import (
	"sync"
	"time"

	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
)

var timeZero time.Time

// Tally keeps per-device counters for a plugin's Stats: the sum over the
// device's open handles plus everything its closed handles counted, so the
// counters are monotonic as the contract asks. The zero Tally is ready to
// use; its methods are safe for concurrent use.
type Tally struct {
	mu     sync.Mutex
	open   map[*Handle]string
	closed map[string]can.Counters
}

func (t *Tally) attach(dev string, h *Handle) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open == nil {
		t.open = make(map[*Handle]string)
	}
	t.open[h] = dev
}

func (t *Tally) detach(dev string, h *Handle) {
	c := h.counters()
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.open, h)
	if t.closed == nil {
		t.closed = make(map[string]can.Counters)
	}
	t.closed[dev] = add(t.closed[dev], c)
}

// Stats returns the counters of each device in ids, in that order.
func (t *Tally) Stats(ids []string) []devices.DeviceStats {
	t.mu.Lock()
	sums := make(map[string]can.Counters, len(ids))
	for dev, c := range t.closed {
		sums[dev] = c
	}
	for h, dev := range t.open {
		sums[dev] = add(sums[dev], h.counters())
	}
	t.mu.Unlock()
	now := time.Now()
	out := make([]devices.DeviceStats, 0, len(ids))
	for _, id := range ids {
		out = append(out, devices.DeviceStats{ID: id, Counters: sums[id].Map(), Time: now})
	}
	return out
}

func add(a, b can.Counters) can.Counters {
	return can.Counters{
		RxFrames: a.RxFrames + b.RxFrames,
		TxFrames: a.TxFrames + b.TxFrames,
		Errors:   a.Errors + b.Errors,
		Drops:    a.Drops + b.Drops,
	}
}
