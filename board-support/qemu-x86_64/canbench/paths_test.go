package canbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/board"
	"github.com/berth-io/berth/core/broker"
	"github.com/berth-io/berth/core/cannative"
	"github.com/berth-io/berth/core/network"
	"github.com/berth-io/berth/core/pluginhost"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/canwire"
)

const (
	bus       = "vcan0"           // the qemu-x86_64 board's can0
	device    = "can0"            // its name on the board
	boardFile = "board.hcl"       // hil.hcl ships it
	grantName = "bench"           // also the container's interface on the native path
	container = "canbench/reader" // whose grant it is, in errors
)

// granted is what the grant lets through each way: dataID and markerID,
// not foreignID.
var granted = broker.Filters{mustFilter("0x100-0x1FF")}

func mustFilter(s string) broker.Filter {
	f, err := broker.ParseFilter(s)
	if err != nil {
		panic(err)
	}
	return f
}

// column is one direction of a path in the table.
type column struct {
	name string
	fig  *figures // nil when it was not measured
}

// TestPaths measures the three CAN paths on one vcan0, one after another
// (each path's rules, sockets and processes are gone before the next
// starts, so none pays for another), prints the table and fails when a
// path loses or reorders a frame or lets a foreign ID through.
func TestPaths(t *testing.T) {
	addVcan(t)
	grant := broker.Grant{Name: grantName, Device: device, Receive: granted, Send: granted}
	cols := []column{
		{name: "(a) raw socket"},
		{name: "(b) native, bus → container"},
		{name: "(b) native, container → bus"},
		{name: "(c) broker, bus → container"},
		{name: "(c) broker, container → bus"},
	}
	defer func() { fmt.Print(table(cols)) }()

	t.Run("raw", func(t *testing.T) {
		measureDir(t, &cols[0], direction{tx: dial(t, "", bus), rx: dial(t, "", bus)})
	})
	if cols[0].fig == nil {
		t.Fatal("no baseline: the raw path failed")
	}
	t.Run("native", func(t *testing.T) {
		ns := attachNative(t, grant)
		measureDir(t, &cols[1], direction{tx: dial(t, "", bus), rx: dial(t, ns, grantName), grant: true})
		measureDir(t, &cols[2], direction{tx: dial(t, ns, grantName), rx: dial(t, "", bus), grant: true})
	})
	t.Run("broker", func(t *testing.T) {
		sock := serveBroker(t, grant)
		measureDir(t, &cols[3], direction{tx: dial(t, "", bus), rx: dialWire(t, sock), grant: true})
		measureDir(t, &cols[4], direction{tx: dialWire(t, sock), rx: dial(t, "", bus), grant: true, refuse: true})
	})
}

// measureDir measures d into c and closes d's ends; on an error it fails
// t and leaves c.fig nil.
func measureDir(t *testing.T, c *column, d direction) {
	t.Helper()
	f, err := measure(d)
	if cerr := errors.Join(d.tx.Close(), d.rx.Close()); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		t.Errorf("%s: %v", c.name, err)
		return
	}
	c.fig = &f
}

// missing skips the test on a host that lacks what the HIL VM provides,
// and fails it inside the VM, where the lack is a harness bug.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("BERTH_HIL") != "" {
		t.Fatalf("in the HIL VM: %s", msg)
	}
	t.Skipf("%s (run it in the HIL VM: see the package doc)", msg)
}

// addVcan creates vcan0 (classical CAN, up), removed at cleanup.
func addVcan(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "needs root: creates %s, a network namespace, vxcan and can-gw rules", bus)
	}
	l := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: bus, MTU: 16}, LinkType: "vcan"}
	if err := netlink.LinkAdd(l); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			missing(t, "kernel has no vcan: ip link add %s type vcan: %v", bus, err)
		}
		t.Fatalf("ip link add %s type vcan: %v", bus, err)
	}
	t.Cleanup(func() {
		if err := netlink.LinkDel(l); err != nil {
			t.Errorf("ip link del %s: %v", bus, err)
		}
	})
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatalf("ip link set %s up: %v", bus, err)
	}
}

// dial opens a raw CAN socket on ifname in the namespace ns ("" for this
// one), closed at cleanup at the latest.
func dial(t *testing.T, ns, ifname string) conn {
	t.Helper()
	f, err := dialRaw(ns, ifname)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// attachNative gives a fresh network namespace the interface grantName
// on vcan0, narrowed to g (core/cannative), and returns the namespace's
// path; both go at cleanup.
func attachNative(t *testing.T, g broker.Grant) string {
	t.Helper()
	ns := filepath.Join(t.TempDir(), "netns")
	if err := network.NewNetNS(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := network.DeleteNetNS(ns); err != nil {
			t.Errorf("delete %s: %v", ns, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	link, err := cannative.Attach(ctx, cannative.Attachment{Bus: bus, Netns: ns, Grant: g, Instance: "canbench", Container: container})
	if errors.Is(err, cannative.ErrUnsupported) {
		missing(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := link.Close(); err != nil {
			t.Errorf("detach: %v", err)
		}
	})
	return ns
}

// serveBroker runs the broker path as berthd does: the board's socketcan
// plugin (a process, under core/pluginhost), the broker on it, and a
// device socket served with canwire that gives container the grant g. It
// returns the socket's path; everything stops at cleanup.
func serveBroker(t *testing.T, g broker.Grant) string {
	t.Helper()
	b, diags := board.Load(boardFile)
	if diags.HasErrors() {
		t.Fatalf("board file: %s", diags.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, err := pluginhost.Start(ctx, b, pluginhost.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("start the board's plugins: %v", err)
	}
	t.Cleanup(func() {
		if err := host.Close(); err != nil {
			t.Errorf("stop the plugins: %v", err)
		}
	})
	br := broker.New(host)
	t.Cleanup(func() {
		if err := br.Close(); err != nil {
			t.Errorf("close the broker: %v", err)
		}
	})
	sock := filepath.Join(t.TempDir(), "device.sock")
	l, err := net.ListenUnix(canwire.Network, &net.UnixAddr{Name: sock, Net: canwire.Network})
	if err != nil {
		t.Fatalf("device socket: %v", err)
	}
	open := func(ctx context.Context, name string) (can.Bus, error) {
		if name != g.Name {
			return nil, fmt.Errorf("container %s has no CAN grant %q (it holds %q): %w", container, name, g.Name, canwire.ErrUnknownGrant)
		}
		return br.Open(ctx, container, g)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- canwire.Serve(sctx, l, open) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("device socket: %v", err)
		}
	})
	return sock
}

// dialWire opens a canwire client on the device socket at sock, as a
// container's program does, closed at cleanup at the latest.
func dialWire(t *testing.T, sock string) conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := canwire.Dial(ctx, sock, grantName, canwire.WithoutRedial())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// table renders the columns as a Markdown table, each figure with its
// ratio against the first column's.
func table(cols []column) string {
	var s strings.Builder
	fmt.Fprintf(&s, "\nCAN paths on %s inside the HIL VM (Linux %s)%s; in brackets, the ratio against (a)\n\n", bus, release(), accel())
	s.WriteString("| figure |")
	for _, c := range cols {
		s.WriteString(" " + c.name + " |")
	}
	s.WriteString("\n| --- |" + strings.Repeat(" ---: |", len(cols)) + "\n")
	rows := []struct {
		name string
		of   func(*figures) float64
		unit string
	}{
		{fmt.Sprintf("latency p50 at %d frames/s", latencyRate), func(f *figures) float64 { return us(f.p50) }, " µs"},
		{fmt.Sprintf("latency p99 at %d frames/s", latencyRate), func(f *figures) float64 { return us(f.p99) }, " µs"},
		{fmt.Sprintf("throughput, %d in flight", window), func(f *figures) float64 { return f.rate }, " frames/s"},
	}
	for _, r := range rows {
		s.WriteString("| " + r.name + " |")
		for i, c := range cols {
			switch {
			case c.fig == nil:
				s.WriteString(" failed |")
			case i == 0:
				fmt.Fprintf(&s, " %s%s |", thousands(r.of(c.fig)), r.unit)
			default:
				fmt.Fprintf(&s, " %s%s (%.2f×) |", thousands(r.of(c.fig)), r.unit, r.of(c.fig)/r.of(cols[0].fig))
			}
		}
		s.WriteString("\n")
	}
	for _, c := range cols {
		if c.fig != nil && c.fig.latRate < 0.9*latencyRate {
			fmt.Fprintf(&s, "\n%s: its sender reached %.0f of the %d frames/s in the latency phase.", c.name, c.fig.latRate, latencyRate)
		}
	}
	return s.String() + "\n"
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// thousands renders v rounded, with commas between thousands: 12,345.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// release is the running kernel's release, as uname -r prints it.
func release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// accel says how the CPU runs: qemu's TCG names itself in the model
// name of the CPU it emulates (-cpu max), as core/cannative's bench
// checks.
func accel() string {
	if cpu, err := os.ReadFile("/proc/cpuinfo"); err == nil && strings.Contains(string(cpu), "TCG") {
		return ", under TCG (an emulated CPU: compare the ratios, not the absolute figures)"
	}
	return ""
}
