package cli_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/core/api/apitest"
)

func TestDevices(t *testing.T) {
	ds := api.Devices{Board: "sim", Devices: []api.Device{
		{Name: "can0", Class: "can", Plugin: "vcan", ID: "vcan0", Available: true, Health: "healthy",
			Counters: map[string]uint64{"rx_frames": 120, "tx_frames": 7, "errors": 0, "drops": 0},
			Sessions: []api.DeviceSession{
				{Container: "demo/dashboard", Grant: "body", Open: 2, Received: 100, Delivered: 90, Dropped: 10},
				{Container: "demo/sensor", Grant: "powertrain", Sent: 7, Refused: 2, RateLimited: 1},
			}},
		{Name: "can1", Class: "can", Plugin: "vcan", ID: "vcan1", Health: "unhealthy", Reason: "plugin vcan exited; restarting", Restarts: 2},
	}}
	sock := apitest.Serve(t, &apitest.Backend{DevicesFn: func(context.Context) (api.Devices, error) { return ds, nil }})

	r := run(t, sock, "", "devices")
	r.expect(t, 0,
		"can0     can     vcan     vcan0   healthy     0          120   7    0        0",
		"can1     can     vcan     vcan1   unhealthy   2          -     -    -        -",
		"can1: plugin vcan exited; restarting",
		"can0     demo/dashboard   body         2      100        90          10        0      0         0",
		"can0     demo/sensor      powertrain   0      0          0           0         7      2         1")

	r = run(t, sock, "", "devices", "--json")
	r.expect(t, 0)
	var got struct {
		Board   string
		Devices []struct {
			Name     string
			Sessions []struct {
				Container string
				Open      int
				Dropped   uint64
			}
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("devices --json: %v\n%s", err, r.stdout)
	}
	if got.Board != "sim" || len(got.Devices) != 2 || got.Devices[0].Sessions[0].Dropped != 10 || got.Devices[0].Sessions[0].Open != 2 || len(got.Devices[1].Sessions) != 0 {
		t.Errorf("devices --json = %+v", got)
	}
}

func TestDevicesWithoutBoard(t *testing.T) {
	sock := apitest.Serve(t, &apitest.Backend{DevicesFn: func(context.Context) (api.Devices, error) { return api.Devices{}, nil }})
	run(t, sock, "", "devices").expect(t, 0, "without a board file", "--board FILE")
}
