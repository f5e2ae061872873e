package vcan

import (
	"context"
	"testing"

	"github.com/berth-io/berth/devices/can"
)

// BenchmarkHub measures frames/s through the hub between two plugin
// instances (two members on the same socket, as two processes would be,
// without the gRPC shim): one sends, the other receives every frame.
func BenchmarkHub(b *testing.B) {
	ctx := context.Background()
	s := testSocket()
	p := New(nil)
	defer p.Close()
	q := New(nil)
	defer q.Close()
	for _, x := range []*Plugin{p, q} {
		if err := x.Configure(ctx, config(s, map[string]bool{"vcan0": false})); err != nil {
			b.Fatal(err)
		}
	}
	tx, _ := p.Open(ctx, "vcan0")
	rx, _ := q.Open(ctx, "vcan0")
	defer tx.Close()
	defer rx.Close()
	st, _ := rx.Receive(ctx)
	const window = 4096
	acked := make(chan struct{}, b.N/window+2)
	b.ResetTimer()
	go func() {
		for i := range b.N {
			if i >= window && i%window == 0 {
				<-acked
			}
			tx.Send(ctx, can.Frame{ID: 0x123, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}})
		}
	}()
	for got := 0; got < b.N; {
		batch, err := st.Recv()
		if err != nil {
			b.Fatal(err)
		}
		for range batch {
			got++
			if got%window == 0 {
				acked <- struct{}{}
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
