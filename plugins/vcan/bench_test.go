package vcan

import (
	"context"
	"testing"
	"time"

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

// BenchmarkProcesses measures frames/s between two real plugin
// processes through the gRPC shim, as the broker uses them: the host
// sends through one process and receives through the other, which is
// frames into a plugin and out of one. A window of frames in flight keeps
// the receiver from falling behind (checked: no drops).
//
//   - Send: one sender, one Send at a time (a round trip per frame);
//   - Send64: 64 goroutines sending at once, as 64 containers would;
//   - SendBatch64: one sender with bursts of 64 frames (can.SendBatch).
func BenchmarkProcesses(b *testing.B) {
	for _, c := range []struct {
		name    string
		senders int
		batch   int
	}{{"Send", 1, 1}, {"Send64", 64, 1}, {"SendBatch64", 1, 64}} {
		b.Run(c.name, func(b *testing.B) { benchProcesses(b, c.senders, c.batch) })
	}
}

func benchProcesses(b *testing.B, senders, batch int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := testSocket()
	pa, pb := launch(b, ctx, s), launch(b, ctx, s)
	tx, _ := openBus(b, ctx, pa.CAN, "vcan0")
	rb, rx := openBus(b, ctx, pb.CAN, "vcan0")
	const window = 2048
	tokens := make(chan struct{}, window)
	errc := make(chan error, senders)
	b.ResetTimer()
	for k := range senders {
		n := b.N / senders
		if k < b.N%senders {
			n++
		}
		go func() {
			frames := make([]can.Frame, 0, batch)
			for i := 0; i < n; i += batch {
				frames = frames[:0]
				for j := i; j < min(i+batch, n); j++ {
					frames = append(frames, seqFrame(j, false))
					select {
					case tokens <- struct{}{}:
					case <-ctx.Done():
						errc <- ctx.Err()
						return
					}
				}
				var err error
				if batch == 1 {
					err = tx.Send(ctx, frames[0])
				} else {
					err = can.SendBatch(ctx, tx, frames)
				}
				if err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for got := 0; got < b.N; {
		fs, err := rx.Recv()
		if err != nil {
			b.Fatalf("after %d of %d frames: %v", got, b.N, err)
		}
		got += len(fs)
		for range fs {
			<-tokens
		}
	}
	b.StopTimer()
	for range senders {
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	if c, err := rb.Counters(ctx); err != nil || c.Drops != 0 {
		b.Fatalf("receiver counters %+v, %v: want no drops", c, err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
