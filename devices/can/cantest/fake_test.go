package cantest_test

import (
	"context"
	"testing"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
)

// fakeHarness returns a harness over a fresh fake driver with an FD bus
// "can0" and a classical bus "can1"; device picks the one under test.
func fakeHarness(t *testing.T, device string) (cantest.Harness, *cantest.Driver) {
	d := cantest.NewDriver()
	d.Add("can0", cantest.NewBus(can.FD))
	d.Add("can1", cantest.NewBus(can.Classical))
	bus := d.Bus(device)
	h := cantest.Harness{
		Driver: d,
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
	return h, d
}

func TestFakeConformance(t *testing.T) {
	cantest.Run(t, "fd", func(t *testing.T) cantest.Harness {
		h, _ := fakeHarness(t, "can0")
		return h
	})
	cantest.Run(t, "classical", func(t *testing.T) cantest.Harness {
		h, _ := fakeHarness(t, "can1")
		return h
	})
}
