package canwire_test

import (
	"testing"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
	"github.com/berth-io/berth/devices/can/canwire"
)

// BenchmarkReceive measures frames delivered through the device socket:
// frames put on a fake bus, read from a client Bus stream.
func BenchmarkReceive(b *testing.B) {
	ctx := testCtx(b)
	d := cantest.NewDriver()
	bus := d.Add("can0", cantest.NewBus(can.Classical, cantest.WithDepth(1<<16)))
	cb, err := canwire.OpenBus(ctx, serve(b, d.Open), "can0", canwire.WithDepth(1<<16))
	if err != nil {
		b.Fatal(err)
	}
	defer cb.Close()
	s, err := cb.Receive(ctx)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 256
	frames := make([]can.Frame, batch)
	for i := range frames {
		frames[i] = can.Frame{ID: 0x123, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	}
	b.ResetTimer()
	got := 0
	for i := 0; i < b.N; i += batch {
		bus.Inject(frames...)
		for got < i+batch {
			fs, err := s.Recv()
			if err != nil {
				b.Fatal(err)
			}
			got += len(fs)
		}
	}
	b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkSend measures acknowledged sends through the device socket.
func BenchmarkSend(b *testing.B) {
	ctx := testCtx(b)
	d := cantest.NewDriver()
	d.Add("can0", cantest.NewBus(can.Classical))
	cb, err := canwire.OpenBus(ctx, serve(b, d.Open), "can0")
	if err != nil {
		b.Fatal(err)
	}
	defer cb.Close()
	f := can.Frame{ID: 0x123, Data: []byte{1, 2, 3, 4}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := cb.Send(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
