package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/berth-io/berth/devices/can"
)

// BenchmarkFanout measures frames/s through the broker from the plugin
// bus (the cantest fake) to each of 1 and 5 sessions, against the same
// readers on plugin handles directly. The injector keeps at most window
// frames ahead of the slowest reader, so readers that keep up lose
// nothing (checked: drops must be 0). Reports frames/s in (each reader
// gets all of them).
func BenchmarkFanout(b *testing.B) {
	for _, readers := range []int{1, 5} {
		b.Run(fmt.Sprintf("broker/sessions=%d", readers), func(b *testing.B) { benchFanout(b, readers, true) })
		b.Run(fmt.Sprintf("direct/readers=%d", readers), func(b *testing.B) { benchFanout(b, readers, false) })
	}
}

func benchFanout(b *testing.B, readers int, viaBroker bool) {
	const batch, window = 64, 2048
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	drv, bus := newFake(can.Classical)
	br := New(drv)
	defer br.Close()
	var handles []can.Bus
	for i := range readers {
		var h can.Bus
		if viaBroker {
			var err error
			if h, err = br.Open(ctx, fmt.Sprintf("c%d", i), allowAll("all", "can0")); err != nil {
				b.Fatal(err)
			}
		} else {
			h = bus.Open()
		}
		defer h.Close()
		handles = append(handles, h)
	}
	var (
		mu   sync.Mutex
		cond = sync.NewCond(&mu)
		got  = make([]int, readers)
	)
	low := func() int {
		m := got[0]
		for _, g := range got[1:] {
			m = min(m, g)
		}
		return m
	}
	var wg sync.WaitGroup
	for i, h := range handles {
		s, err := h.Receive(ctx)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for {
				fs, err := s.Recv()
				if err != nil {
					return
				}
				mu.Lock()
				got[i] += len(fs)
				mu.Unlock()
				cond.Broadcast()
			}
		})
	}
	frames := make([]can.Frame, batch)
	for i := range frames {
		frames[i] = can.Frame{ID: 0x123, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	}
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += batch {
		mu.Lock()
		for sent-low() > window {
			cond.Wait()
		}
		mu.Unlock()
		bus.Inject(frames[:min(batch, b.N-sent)]...)
	}
	mu.Lock()
	for low() < b.N {
		cond.Wait()
	}
	mu.Unlock()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	var drops uint64
	for _, h := range handles {
		c, _ := h.Counters(ctx)
		drops += c.Drops
	}
	if drops != 0 {
		b.Errorf("%d frames dropped for readers that keep up", drops)
	}
	cancel()
	wg.Wait()
}
