package can_test

import (
	"context"
	"errors"
	"testing"
	"time"

	einride "go.einride.tech/can"

	"github.com/berth-io/berth/devices/can"
)

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		f    can.Frame
		mode can.Mode
		want error
	}{
		{"max standard", can.Frame{ID: 0x7FF, Data: make([]byte, 8)}, can.Classical, nil},
		{"max extended", can.Frame{ID: 0x1FFFFFFF, Extended: true}, can.Classical, nil},
		{"remote 8", can.Frame{ID: 1, Remote: true, RemoteLen: 8}, can.Classical, nil},
		{"fd 64 on fd bus", can.Frame{ID: 1, FD: true, BRS: true, Data: make([]byte, 64)}, can.FD, nil},
		{"classic on fd bus", can.Frame{ID: 1, Data: []byte{1}}, can.FD, nil},
		{"29-bit id without extended", can.Frame{ID: 0x800}, can.Classical, can.ErrInvalidID},
		{"30-bit extended", can.Frame{ID: 1 << 29, Extended: true}, can.Classical, can.ErrInvalidID},
		{"9 bytes classic", can.Frame{ID: 1, Data: make([]byte, 9)}, can.FD, can.ErrInvalidLength},
		{"fd 9 bytes", can.Frame{ID: 1, FD: true, Data: make([]byte, 9)}, can.FD, can.ErrInvalidLength},
		{"fd 65 bytes", can.Frame{ID: 1, FD: true, Data: make([]byte, 65)}, can.FD, can.ErrInvalidLength},
		{"fd on classical bus", can.Frame{ID: 1, FD: true}, can.Classical, can.ErrFDOnClassicalBus},
		{"fd remote", can.Frame{ID: 1, FD: true, Remote: true}, can.FD, can.ErrInvalidFlags},
		{"esi without fd", can.Frame{ID: 1, ESI: true}, can.FD, can.ErrInvalidFlags},
		{"remote len without remote", can.Frame{ID: 1, RemoteLen: 2}, can.Classical, can.ErrInvalidFlags},
		{"error frame", can.Frame{ID: 1, Error: true}, can.Classical, can.ErrInvalidFlags},
	} {
		err := c.f.Validate(c.mode)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, c.want) || !errors.Is(err, can.ErrInvalidFrame) {
			t.Errorf("%s: %v, want %v wrapping ErrInvalidFrame", c.name, err, c.want)
		}
	}
}

func TestValidFDLen(t *testing.T) {
	var ok []int
	for n := -1; n <= 70; n++ {
		if can.ValidFDLen(n) {
			ok = append(ok, n)
		}
	}
	want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64}
	if len(ok) != len(want) {
		t.Fatalf("valid FD lengths %v, want %v", ok, want)
	}
	for i := range want {
		if ok[i] != want[i] {
			t.Fatalf("valid FD lengths %v, want %v", ok, want)
		}
	}
}

func TestFrameString(t *testing.T) {
	for _, c := range []struct {
		f    can.Frame
		want string
	}{
		{can.Frame{ID: 0x123, Data: []byte{0xde, 0xad}}, "123#DEAD"},
		{can.Frame{ID: 0x1234567, Extended: true}, "01234567#"},
		{can.Frame{ID: 0x12, Remote: true, RemoteLen: 3}, "012#R3"},
		{can.Frame{ID: 0x12, FD: true, BRS: true, Data: []byte{1}}, "012##101"},
		{can.Frame{ID: 0x4, Error: true, Data: []byte{0, 1}}, "20000004#0001"},
	} {
		if got := c.f.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.f, got, c.want)
		}
	}
}

func TestEinride(t *testing.T) {
	for _, f := range []can.Frame{
		{ID: 0x123, Data: []byte{1, 2, 3}},
		{ID: 0x1ABCDEF, Extended: true, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{ID: 0x7, Remote: true, RemoteLen: 5},
		{ID: 0x7},
	} {
		e, err := can.ToEinride(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := e.Validate(); err != nil {
			t.Errorf("%s: einride says %v", f, err)
		}
		back := can.FromEinride(e)
		if back.String() != f.String() || back.Extended != f.Extended || back.Remote != f.Remote {
			t.Errorf("round trip %s gave %s", f, back)
		}
		if e.String() != f.String() {
			t.Errorf("einride prints %s as %s", f, e)
		}
	}
	for _, f := range []can.Frame{
		{ID: 1, FD: true, Data: make([]byte, 12)},
		{ID: 1, Error: true},
		{ID: 1, Data: make([]byte, 9)},
	} {
		if _, err := can.ToEinride(f); !errors.Is(err, can.ErrInvalidFrame) {
			t.Errorf("%+v: %v, want ErrInvalidFrame", f, err)
		}
	}
	e := einride.Frame{ID: 0x55, Length: 2, Data: einride.Data{9, 8, 7}}
	if got := can.FromEinride(e); len(got.Data) != 2 || got.Data[1] != 8 {
		t.Errorf("from einride %v: %+v", e, got)
	}
}

func TestHubDropsOnlySlowReader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := can.NewHub(10)
	slow, err := h.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := h.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []can.Frame
	for i := 0; i < 25; i++ {
		h.Publish(can.Frame{ID: uint32(i)})
		b, err := fast.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
	}
	if len(got) != 25 {
		t.Fatalf("fast reader got %d frames, want 25", len(got))
	}
	b, err := slow.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 10 || b[0].ID != 0 || b[9].ID != 9 {
		t.Fatalf("slow reader got %d frames from %v, want the first 10", len(b), b)
	}
	if c := h.Counters(); c.Drops != 15 || c.RxFrames != 25 {
		t.Fatalf("counters %+v, want 15 drops of 25", c)
	}
}

func TestHubBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := can.NewHub(0)
	s, err := h.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := can.MaxBatch + 100
	for i := 0; i < n; i++ {
		h.Publish(can.Frame{ID: uint32(i % 0x7FF), Error: i == 3})
	}
	b1, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(b1) != can.MaxBatch || len(b2) != 100 || b2[0].ID != uint32(can.MaxBatch) {
		t.Fatalf("batches of %d and %d (second starts at %d), want %d and 100", len(b1), len(b2), b2[0].ID, can.MaxBatch)
	}
	if c := h.Counters(); c.Errors != 1 || c.RxFrames != uint64(n) {
		t.Fatalf("counters %+v", c)
	}
	h.Publish(can.Frame{ID: 1})
	h.Close()
	h.Close()
	if b, err := s.Recv(); err != nil || len(b) != 1 {
		t.Fatalf("queued frame after close: %v %v", b, err)
	}
	if _, err := s.Recv(); !errors.Is(err, can.ErrClosed) {
		t.Fatalf("after close: %v, want ErrClosed", err)
	}
	if _, err := h.Receive(ctx); !errors.Is(err, can.ErrClosed) {
		t.Fatalf("receive after close: %v, want ErrClosed", err)
	}
}

func BenchmarkShimReceive(b *testing.B) {
	benchShimReceive(b)
}
