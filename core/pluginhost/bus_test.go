package pluginhost

import (
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
)

// TestSendBatch sends batches through the host's bus to a real plugin
// process: the frames reach another handle in order, a refused frame
// fails alone with its own error, and once the plugin is killed every
// frame of a batch fails with devices.ErrUnavailable, in a *can.BatchError.
func TestSendBatch(t *testing.T) {
	b := loopBoard(t, loopbackBin, loopbackSum, `device = "loop0"`, "can")
	h := start(t, b, WithBackoff(time.Minute, time.Minute))
	ctx := testCtx(t, 20*time.Second)
	a, err := h.Open(ctx, "can0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	r, err := h.Open(ctx, "can0")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok := a.(can.BatchSender); !ok {
		t.Fatalf("the host's bus %T is not a can.BatchSender", a)
	}
	st, err := r.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}

	frames := make([]can.Frame, 100)
	for i := range frames {
		frames[i] = can.Frame{ID: 0x100 + uint32(i), Data: []byte{byte(i)}}
	}
	if err := can.SendBatch(ctx, a, frames); err != nil {
		t.Fatalf("send batch: %v", err)
	}
	bad := []can.Frame{{ID: 0x1}, {ID: 0x800}, {ID: 0x2}}
	err = can.SendBatch(ctx, a, bad)
	var be *can.BatchError
	if !errors.As(err, &be) || len(be.Errs) != 3 || be.Errs[0] != nil || be.Errs[2] != nil ||
		!errors.Is(be.Errs[1], can.ErrInvalidID) || errors.Is(be.Errs[1], devices.ErrUnavailable) {
		t.Fatalf("batch with a bad frame: %v, want a *can.BatchError failing frame 1 alone with ErrInvalidID", err)
	}
	want := slices.Concat(frames, []can.Frame{bad[0], bad[2]})
	var got []can.Frame
	for len(got) < len(want) {
		fs, err := st.Recv()
		if err != nil {
			t.Fatalf("recv after %d of %d frames: %v", len(got), len(want), err)
		}
		got = append(got, fs...)
	}
	for i := range want {
		if got[i].ID != want[i].ID || string(got[i].Data) != string(want[i].Data) {
			t.Fatalf("frame %d received is %s, want %s (order kept)", i, got[i], want[i])
		}
	}

	if err := syscall.Kill(onePlugin(t), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, err := st.Recv(); err == nil; _, err = st.Recv() {
	}
	err = can.SendBatch(ctx, a, frames[:5])
	if !errors.As(err, &be) || len(be.Errs) != 5 {
		t.Fatalf("batch after the plugin died: %v, want a *can.BatchError of 5 frames", err)
	}
	for i, e := range be.Errs {
		if !errors.Is(e, devices.ErrUnavailable) {
			t.Errorf("frame %d after the plugin died: %v, want devices.ErrUnavailable", i, e)
		}
	}
}
