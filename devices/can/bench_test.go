package can_test

import (
	"context"
	"testing"

	"github.com/hashicorp/go-plugin"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
	"github.com/berth-io/berth/devices/sdk"
)

// benchShimReceive measures frames/s from a fake bus through the gRPC shim
// to a host-side reader (one frame published per op).
func benchShimReceive(b *testing.B) {
	d := cantest.NewDriver()
	bus := d.Add("can0", cantest.NewBus(can.Classical, cantest.WithDepth(1<<20)))
	c, _ := plugin.TestPluginGRPCConn(b, false, sdk.PluginSet(sdk.Plugin{CAN: d}))
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

// servedBus opens can0 of a fake driver through the real gRPC shim over a
// unix socket (go-plugin's test connection) and returns the host's handle.
func servedBus(b *testing.B, m can.Mode) can.Bus {
	d := cantest.NewDriver()
	d.Add("can0", cantest.NewBus(m))
	c, _ := plugin.TestPluginGRPCConn(b, false, sdk.PluginSet(sdk.Plugin{CAN: d}))
	b.Cleanup(func() { c.Close() })
	raw, err := c.Dispense(can.PluginName)
	if err != nil {
		b.Fatal(err)
	}
	rb, err := raw.(can.Driver).Open(context.Background(), "can0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rb.Close() })
	return rb
}

// BenchmarkShimSend measures one sender calling Send in a loop, each call
// waiting for its frame's result: the round trip through the shim.
func BenchmarkShimSend(b *testing.B) {
	rb := servedBus(b, can.Classical)
	ctx := context.Background()
	f := can.Frame{ID: 0x123, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	b.ResetTimer()
	for range b.N {
		if err := rb.Send(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkShimSendConcurrent measures 64 goroutines sending on one handle.
func BenchmarkShimSendConcurrent(b *testing.B) {
	rb := servedBus(b, can.Classical)
	ctx := context.Background()
	f := can.Frame{ID: 0x123, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	b.SetParallelism(32) // × GOMAXPROCS (2 here): 64 senders
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := rb.Send(ctx, f); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkShimSendBatch measures one sender with bursts of 64 frames
// (can.SendBatch), each burst waiting for its frames' results.
func BenchmarkShimSendBatch(b *testing.B) {
	rb := servedBus(b, can.Classical)
	ctx := context.Background()
	frames := make([]can.Frame, 64)
	for i := range frames {
		frames[i] = can.Frame{ID: 0x123, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += len(frames) {
		if err := can.SendBatch(ctx, rb, frames[:min(len(frames), b.N-i)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
