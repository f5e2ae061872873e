package can_test

import (
	"context"
	"testing"

	"github.com/hashicorp/go-plugin"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
)

// benchShimReceive measures frames/s from a fake bus through the gRPC shim
// to a host-side reader (one frame published per op).
func benchShimReceive(b *testing.B) {
	d := cantest.NewDriver()
	bus := d.Add("can0", cantest.NewBus(can.Classical, cantest.WithDepth(1<<20)))
	c, _ := plugin.TestPluginGRPCConn(b, false, map[string]plugin.Plugin{can.PluginName: &can.GRPCPlugin{Impl: d}})
	defer c.Close()
	raw, err := c.Dispense(can.PluginName)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rb, err := raw.(can.Driver).Open(ctx, "can0")
	if err != nil {
		b.Fatal(err)
	}
	defer rb.Close()
	s, err := rb.Receive(ctx)
	if err != nil {
		b.Fatal(err)
	}
	f := can.Frame{ID: 0x123, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			bus.Inject(f)
		}
	}()
	got, batches := 0, 0
	for got < b.N {
		fs, err := s.Recv()
		if err != nil {
			b.Fatal(err)
		}
		got += len(fs)
		batches++
	}
	b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(got)/float64(batches), "frames/batch")
}
