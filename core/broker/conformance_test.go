package broker

import (
	"context"
	"testing"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
)

// grantDriver is the container-facing side as a can.Driver: each Open is
// a new session of one container, on the grant named like the device, or
// on a grant allowing everything.
type grantDriver struct {
	b      *Broker
	grants map[string]Grant
}

func (d *grantDriver) Open(ctx context.Context, device string) (can.Bus, error) {
	g, ok := d.grants[device]
	if !ok {
		g = allowAll("all", device)
	}
	return d.b.Open(ctx, "app", g)
}

// TestConformance runs the CAN conformance suite against broker sessions
// on the cantest fake, classical and FD. On the FD bus, a session whose
// grant lacks fd is the suite's classical device.
func TestConformance(t *testing.T) {
	for _, mode := range []can.Mode{can.Classical, can.FD} {
		cantest.Run(t, "broker-"+mode.String(), func(t *testing.T) cantest.Harness {
			drv := cantest.NewDriver()
			bus := drv.Add("can0", cantest.NewBus(mode))
			b := New(drv)
			t.Cleanup(func() { _ = b.Close() })
			classic := allowAll("classic", "can0")
			classic.FD = false
			h := cantest.Harness{
				Driver: &grantDriver{b: b, grants: map[string]Grant{"classic": classic}},
				Device: "can0",
				Inject: func(_ context.Context, frames ...can.Frame) error {
					bus.Inject(frames...)
					return nil
				},
				SetState: func(_ context.Context, s can.State) error {
					bus.SetState(s)
					return nil
				},
			}
			if mode == can.FD {
				h.ClassicalDevice = "classic"
			}
			return h
		})
	}
}
