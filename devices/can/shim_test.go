package can_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
	"github.com/berth-io/berth/devices/sdk"
)

// servedDriver serves d through the real go-plugin gRPC shim in-process and
// returns the host-side Driver.
func servedDriver(t *testing.T, d can.Driver) can.Driver {
	t.Helper()
	c, _ := plugin.TestPluginGRPCConn(t, false, sdk.PluginSet(sdk.Plugin{CAN: d}))
	t.Cleanup(func() { _ = c.Close() })
	raw, err := c.Dispense(can.PluginName)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	return raw.(can.Driver)
}

func TestShimConformance(t *testing.T) {
	factory := func(device string) func(t *testing.T) cantest.Harness {
		return func(t *testing.T) cantest.Harness {
			d := cantest.NewDriver()
			d.Add("can0", cantest.NewBus(can.FD))
			d.Add("can1", cantest.NewBus(can.Classical))
			bus := d.Bus(device)
			h := cantest.Harness{
				Driver: servedDriver(t, d),
				Device: device,
				Inject: func(_ context.Context, frames ...can.Frame) error {
					bus.Inject(frames...)
					return nil
				},
				SetState: func(_ context.Context, s can.State) error {
					bus.SetState(s)
					return nil
				},
			}
			if device == "can0" {
				h.ClassicalDevice = "can1"
			}
			return h
		}
	}
	cantest.Run(t, "fd", factory("can0"))
	cantest.Run(t, "classical", factory("can1"))
}

// TestShimKeepsTimestamps checks that a receive timestamp crosses the shim
// to the nanosecond, and that the frame is otherwise unchanged.
func TestShimKeepsTimestamps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := cantest.NewDriver()
	bus := d.Add("can0", cantest.NewBus(can.FD))
	remote := servedDriver(t, d)

	direct := bus.Open()
	defer direct.Close()
	ds, err := direct.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := remote.Open(ctx, "can0")
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	rs, err := rb.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 123456789)
	f := can.Frame{ID: 0x1ABCDEF0, Extended: true, FD: true, BRS: true, ESI: true, Data: make([]byte, 64), Timestamp: ts}
	bus.Inject(f)
	want, err := ds.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(want) != 1 {
		t.Fatalf("got %d and %d frames, want 1 each", len(got), len(want))
	}
	if got[0].Timestamp.UnixNano() != want[0].Timestamp.UnixNano() || got[0].Timestamp.UnixNano() != ts.UnixNano() {
		t.Errorf("timestamp through the shim %d, direct %d, injected %d",
			got[0].Timestamp.UnixNano(), want[0].Timestamp.UnixNano(), ts.UnixNano())
	}
	if got[0].String() != f.String() || !got[0].ESI || !got[0].BRS {
		t.Errorf("frame through the shim %s %+v, want %s", got[0], got[0], f)
	}
}

// TestShimErrorCodes checks the gRPC edge: sentinels survive as errors.Is
// and carry the codes the broker reports to containers.
func TestShimErrorCodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := cantest.NewDriver()
	bus := d.Add("can0", cantest.NewBus(can.Classical))
	remote := servedDriver(t, d)
	b, err := remote.Open(ctx, "can0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	for _, c := range []struct {
		name  string
		setup func()
		f     can.Frame
		want  error
		code  codes.Code
	}{
		{"bad id", nil, can.Frame{ID: 0x800}, can.ErrInvalidID, codes.InvalidArgument},
		{"fd on classical", nil, can.Frame{ID: 1, FD: true}, can.ErrFDOnClassicalBus, codes.InvalidArgument},
		{"bus-off", func() { bus.SetState(can.StateBusOff) }, can.Frame{ID: 1}, can.ErrBusOff, codes.FailedPrecondition},
	} {
		if c.setup != nil {
			c.setup()
		}
		err := b.Send(ctx, c.f)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if got := status.Code(err); got != c.code {
			t.Errorf("%s: code %v, want %v", c.name, got, c.code)
		}
	}
	if _, err := remote.Open(ctx, "nope"); !errors.Is(err, can.ErrUnknownDevice) || status.Code(err) != codes.NotFound {
		t.Errorf("open unknown: %v (code %v), want ErrUnknownDevice / NotFound", err, status.Code(err))
	}
}
