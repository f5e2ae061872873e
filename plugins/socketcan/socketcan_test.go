package socketcan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"github.com/zclconf/go-cty/cty"

	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
	"github.com/berth-io/berth/devices/sdk"
	"github.com/berth-io/berth/plugins/internal/plugintest"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range []can.Frame{
		{ID: 0x123, Data: []byte{0xDE, 0xAD, 0xBE, 0xEF}},
		{ID: 0},
		{ID: 0x1FFFFFFF, Extended: true, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{ID: 5, Extended: true},
		{ID: 0x321, Remote: true, RemoteLen: 4},
		{ID: 0x1234567, Extended: true, Remote: true},
		{ID: 0x300, FD: true, Data: bytes.Repeat([]byte{7}, 64)},
		{ID: 0x1300000, Extended: true, FD: true, BRS: true, ESI: true, Data: bytes.Repeat([]byte{1}, 12)},
		{ID: 0x301, FD: true},
	} {
		b := encodeFrame(f)
		if want := map[bool]int{false: classicMTU, true: fdMTU}[f.FD]; len(b) != want {
			t.Fatalf("%s encodes to %d bytes, want %d", f, len(b), want)
		}
		got, err := decodeFrame(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if got.String() != f.String() || got.Extended != f.Extended || got.ESI != f.ESI || got.BRS != f.BRS {
			t.Errorf("round trip %s (%+v) gave %s (%+v)", f, f, got, got)
		}
	}
}

func TestDecodeKernelBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want can.Frame
		err  error
	}{
		{"standard", []byte{0x23, 0x01, 0, 0, 2, 0, 0, 0, 0xAA, 0xBB, 0, 0, 0, 0, 0, 0}, can.Frame{ID: 0x123, Data: []byte{0xAA, 0xBB}}, nil},
		{"extended rtr", []byte{0x67, 0x45, 0x23, 0xC1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, can.Frame{ID: 0x1234567, Extended: true, Remote: true, RemoteLen: 3}, nil},
		{"dlc 15 means 8", []byte{1, 0, 0, 0, 15, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, can.Frame{ID: 1, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}, nil},
		{"bus-off error frame", []byte{0x40, 0, 0, 0x20, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, can.Frame{ID: 0x40, Error: true, Data: make([]byte, 8)}, nil},
		{"short read", make([]byte, 10), can.Frame{}, can.ErrInvalidLength},
		{"fd length 13", append([]byte{1, 0, 0, 0, 13, fdFDF, 0, 0}, make([]byte, 64)...), can.Frame{}, can.ErrInvalidLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeFrame(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("decode: %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want.String() || got.Error != tc.want.Error || got.Remote != tc.want.Remote {
				t.Fatalf("decode = %s %+v, want %s %+v", got, got, tc.want, tc.want)
			}
		})
	}
}

func TestDecodeError(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       can.Frame
		state   can.State
		classes string
	}{
		{"bus-off", can.Frame{ID: errBusOff, Error: true, Data: make([]byte, 8)}, can.StateBusOff, "bus-off"},
		{"rx passive", can.Frame{ID: errCrtl, Error: true, Data: []byte{0, crtlRxPassive, 0, 0, 0, 0, 0, 0}}, can.StateErrorPassive, "controller(rx-passive)"},
		{"back to active", can.Frame{ID: errCrtl, Error: true, Data: []byte{0, crtlActive, 0, 0, 0, 0, 0, 0}}, can.StateErrorActive, "controller(active)"},
		{"restarted", can.Frame{ID: errRestarted, Error: true, Data: make([]byte, 8)}, can.StateErrorActive, "restarted"},
		{"no ack, bus error", can.Frame{ID: errAck | errBusError, Error: true, Data: make([]byte, 8)}, can.StateUnknown, "no-ack, bus-error"},
		{"not an error frame", can.Frame{ID: errBusOff}, can.StateUnknown, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := DecodeError(tc.f)
			if e.State != tc.state || e.String() != tc.classes {
				t.Fatalf("DecodeError = %v %q, want %v %q", e.State, e.String(), tc.state, tc.classes)
			}
		})
	}
}

func devs(m map[string]map[string]cty.Value) cty.Value {
	out := map[string]cty.Value{}
	for k, attrs := range m {
		full := map[string]cty.Value{"interface": cty.NullVal(cty.String), "fd": cty.NullVal(cty.Bool),
			"bitrate": cty.NullVal(cty.Number), "data_bitrate": cty.NullVal(cty.Number)}
		for a, v := range attrs {
			full[a] = v
		}
		out[k] = cty.ObjectVal(full)
	}
	return cty.ObjectVal(map[string]cty.Value{"devices": cty.MapVal(out)})
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      cty.Value
		want    string
		wantErr string
	}{
		{"interface defaults to the ID", devs(map[string]map[string]cty.Value{"can0": {}}), "[{can0 can0 false 0 0}]", ""},
		{"fd with rates", devs(map[string]map[string]cty.Value{"adas": {"interface": cty.StringVal("can2"), "fd": cty.True,
			"bitrate": cty.NumberIntVal(500000), "data_bitrate": cty.NumberIntVal(2000000)}}), "[{adas can2 true 500000 2000000}]", ""},
		{"no devices", cty.NilVal, "", "devices is missing"},
		{"data bitrate without fd", devs(map[string]map[string]cty.Value{"x": {"bitrate": cty.NumberIntVal(500000), "data_bitrate": cty.NumberIntVal(2000000)}}), "", "set fd = true"},
		{"bitrate too high", devs(map[string]map[string]cty.Value{"x": {"bitrate": cty.NumberIntVal(2000000)}}), "", "from 0 to 1000000"},
		{"fractional bitrate", devs(map[string]map[string]cty.Value{"x": {"bitrate": cty.NumberFloatVal(1.5)}}), "", "whole number"},
		{"interface too long", devs(map[string]map[string]cty.Value{"x": {"interface": cty.StringVal("a-very-long-ifname")}}), "", "1 to 15"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig(tc.in)
			if tc.wantErr != "" {
				if !errors.Is(err, devices.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseConfig: %v, want ErrInvalidConfig saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := fmt.Sprint(got); s != tc.want {
				t.Fatalf("ParseConfig = %s, want %s", s, tc.want)
			}
		})
	}
}

// The netlink request carries what `ip link set can2 type can bitrate
// 500000 dbitrate 2000000 fd on` sends.
func TestLinkRequest(t *testing.T) {
	b := linkRequest(7, 500000, 2000000, true).Serialize()
	for _, want := range [][]byte{
		[]byte("can"),
		bittiming(500000)[:4],
		bittiming(2000000)[:4],
		{ctrlmodeFD, 0, 0, 0, ctrlmodeFD, 0, 0, 0},
	} {
		if !bytes.Contains(b, want) {
			t.Errorf("request lacks % X", want)
		}
	}
}

// vcanReason is why the kernel tests skip, or "" when they can run.
func vcanReason() string {
	const reason = "needs a kernel with vcan (CONFIG_CAN_VCAN): runs in the HIL VM (issue 4)"
	if os.Geteuid() != 0 {
		return "needs root to create a vcan interface; " + reason
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return reason + ": " + err.Error()
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		return reason + ": " + err.Error()
	}
	defer ns.Close()
	defer netns.Set(orig)
	if err := netlink.LinkAdd(&netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: "vcantest"}, LinkType: "vcan"}); err != nil {
		return reason + ": " + err.Error()
	}
	return ""
}

// addVcan creates a vcan interface for one test (FD when fd) and removes
// it afterwards.
func addVcan(t *testing.T, fd bool) string {
	t.Helper()
	name := fmt.Sprintf("bvc%d%s", os.Getpid()%100000, map[bool]string{false: "c", true: "f"}[fd])
	l := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: name}, LinkType: "vcan"}
	if fd {
		l.LinkAttrs.MTU = fdMTU
	}
	if err := netlink.LinkAdd(l); err != nil {
		t.Fatalf("add %s: %v", name, err)
	}
	t.Cleanup(func() { netlink.LinkDel(l) })
	if fd {
		if err := netlink.LinkSetMTU(l, fdMTU); err != nil {
			t.Fatal(err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestConformanceOnVcan(t *testing.T) {
	if r := vcanReason(); r != "" {
		t.Skip(r)
	}
	classic, fd := addVcan(t, false), addVcan(t, true)
	p := New(nil)
	cfg := devs(map[string]map[string]cty.Value{
		"bus0": {"interface": cty.StringVal(classic)},
		"fd0":  {"interface": cty.StringVal(fd), "fd": cty.True},
	})
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	cantest.Run(t, "classical", func(t *testing.T) cantest.Harness {
		return cantest.Harness{Driver: p, Device: "bus0"}
	})
	cantest.Run(t, "fd", func(t *testing.T) cantest.Harness {
		return cantest.Harness{Driver: p, Device: "fd0", ClassicalDevice: "bus0"}
	})
}

func TestMissingInterfaceUnhealthy(t *testing.T) {
	p := New(nil)
	if err := p.Configure(context.Background(), devs(map[string]map[string]cty.Value{"nope": {"interface": cty.StringVal("berthnocan0")}})); err != nil {
		t.Fatal(err)
	}
	fp, ok := p.roster.Current()
	if !ok || len(fp.Devices) != 1 || fp.Devices[0].Health != devices.HealthUnhealthy || !strings.Contains(fp.Devices[0].HealthReason, "berthnocan0") {
		t.Fatalf("fingerprint %+v, want nope unhealthy naming its interface", fp)
	}
	if _, err := p.Open(context.Background(), "nope"); err == nil {
		t.Fatal("open of a missing interface succeeded")
	}
	if _, err := p.Open(context.Background(), "other"); !errors.Is(err, can.ErrUnknownDevice) {
		t.Fatalf("open of an unknown device: %v", err)
	}
}

// A started and configured plugin process stays within
// plugintest.MaxIdleRSS. Its device names a missing interface (reported
// unhealthy), so this runs on hosts without CAN.
func TestIdleRSS(t *testing.T) {
	bin, err := plugintest.Build("./cmd/berth-plugin-socketcan", t.TempDir())
	if errors.Is(err, plugintest.ErrNoGo) {
		t.Skipf("cannot build the plugin to measure it: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum, err := sdk.FileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sdk.Launch(ctx, bin, sdk.WithSHA256(sum))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Kill()
	if err := c.Base.Configure(ctx, devs(map[string]map[string]cty.Value{"can0": {"interface": cty.StringVal("berthnocan0")}})); err != nil {
		t.Fatal(err)
	}
	rss, err := plugintest.ReadRSS(c.Pid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("configured, idle: %v", rss)
	if rss.Total > plugintest.MaxIdleRSS {
		t.Errorf("idle plugin uses %v, more than %d KiB", rss, plugintest.MaxIdleRSS>>10)
	}
}

// A bus that goes down and comes back: the device turns unhealthy and a
// send is refused with ErrBusStopped while it is down; once it is up again
// the device is healthy and the handles opened before carry frames again,
// with no reopen.
func TestBusDownAndUp(t *testing.T) {
	if r := vcanReason(); r != "" {
		t.Skip(r)
	}
	name := addVcan(t, false)
	p := New(nil)
	if err := p.Configure(context.Background(), devs(map[string]map[string]cty.Value{"bus0": {"interface": cty.StringVal(name)}})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tx, err := p.Open(ctx, "bus0")
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	rx, err := p.Open(ctx, "bus0")
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	st, err := rx.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sendAndHear := func(id uint32) {
		t.Helper()
		if err := tx.Send(ctx, can.Frame{ID: id, Data: []byte{1}}); err != nil {
			t.Fatalf("send 0x%X: %v", id, err)
		}
		got, err := st.Recv()
		if err != nil || len(got) == 0 || got[0].ID != id {
			t.Fatalf("after sending 0x%X received %+v, %v", id, got, err)
		}
	}
	sendAndHear(0x100)

	link, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(link); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, p, devices.HealthUnhealthy)
	if err := tx.Send(ctx, can.Frame{ID: 0x101}); !errors.Is(err, can.ErrBusStopped) {
		t.Errorf("send on a down bus: %v, want ErrBusStopped", err)
	}

	if err := netlink.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, p, devices.HealthHealthy)
	sendAndHear(0x102)
}

// waitHealth waits until the plugin's fingerprint shows its one device
// with health h.
func waitHealth(t *testing.T, p *Plugin, h devices.Health) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		fp, ok := p.roster.Current()
		if ok && len(fp.Devices) == 1 && fp.Devices[0].Health == h {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fingerprint %+v: want the device %s", fp, h)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
