package broker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-io/berth/core/board"
	"github.com/berth-io/berth/core/pluginhost"
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

// vcanBoard drives one bus of the real berth-plugin-vcan process, on a
// hub socket private to the run.
const vcanBoard = `board "bench" {
  plugin "vcan" {
    path = %q
    config {
      socket = %q
      buses  = { vcan0 = {} }
    }
  }
  device "can0" {
    class  = "can"
    plugin = "vcan"
    id     = "vcan0"
  }
}
`

// startVcan builds berth-plugin-vcan and starts it under a plugin host,
// as berthd does; everything is undone at the end of b.
func startVcan(b *testing.B) *pluginhost.Host {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "berth-plugin-vcan")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "../../plugins/vcan/cmd/berth-plugin-vcan")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build berth-plugin-vcan: %v\n%s", err, out)
	}
	src := fmt.Sprintf(vcanBoard, bin, fmt.Sprintf("@berth-broker-bench-%d", os.Getpid()))
	bd, diags := board.Parse([]byte(src), filepath.Join(dir, "board.hcl"))
	if diags.HasErrors() {
		b.Fatal(diags.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := pluginhost.Start(ctx, bd, pluginhost.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatalf("start berth-plugin-vcan: %v", err)
	}
	b.Cleanup(func() { _ = h.Close() })
	return h
}

// BenchmarkSend measures frames/s that 1 and 8 sessions sending at once
// (each Send waits for its own result, as a container's does) get through
// the broker to the real berth-plugin-vcan process. Every frame must be
// sent (checked against the sessions' counters).
func BenchmarkSend(b *testing.B) {
	h := startVcan(b)
	for _, senders := range []int{1, 8} {
		b.Run(fmt.Sprintf("vcan/sessions=%d", senders), func(b *testing.B) { benchSend(b, h, senders) })
	}
}

func benchSend(b *testing.B, h *pluginhost.Host, senders int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	br := New(h)
	defer br.Close()
	sessions := make([]can.Bus, senders)
	for i := range sessions {
		s, err := br.Open(ctx, fmt.Sprintf("c%d", i), allowAll("all", "can0"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		sessions[i] = s
	}
	var next atomic.Int64
	errs := make(chan error, senders)
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() {
			f := can.Frame{ID: 0x100 + uint32(i), Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
			for next.Add(1) <= int64(b.N) {
				if err := s.Send(ctx, f); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	br.mu.Lock()
	q := &br.devices["can0"].tx
	br.mu.Unlock()
	q.mu.Lock()
	b.ReportMetric(float64(b.N)/float64(q.batches), "frames/batch")
	q.mu.Unlock()
	var sent uint64
	for _, s := range sessions {
		c, _ := s.Counters(ctx)
		sent += c.TxFrames
	}
	if sent != uint64(b.N) {
		b.Errorf("sessions sent %d frames, want %d", sent, b.N)
	}
}
