package containers

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/network"
)

// nativePlaybook is a container whose CAN grant is served natively: an
// interface "body" in its namespace that receives 0x100-0x1FF of can0 and
// may send only 0x123.
const nativePlaybook = `stack "nat" {
  container "ecu" {
    images  = ["berth.local/busybox:1.35"]
    command = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    can "body" {
      bus     = "can0"
      receive = ["0x100-0x1FF"]
      send    = ["0x123"]
      native  = true
    }
  }
}
`

// TestNativeGrantIsAKernelInterface runs berthd on the qemu-x86_64 board
// with a native grant: the container gets a SocketCAN interface that hears
// only the granted IDs and sends only the granted ID onto vcan0, cangw -L
// shows berth's rules, `berth devices` the native session; a berthd
// killed with SIGKILL and started again adopts the link, which keeps
// carrying the grant's frames; after `berth down` no bc- link and no rule
// is left.
func TestNativeGrantIsAKernelInterface(t *testing.T) {
	needRoot(t, "runs berthd and containers, creates vcan0")
	for _, p := range []string{"berthd", "berth-monitor", "berth-plugin-socketcan", "runc", "cansend", "candump"} {
		need(t, p)
	}
	cangw := need(t, "cangw")
	board := boardFile(t)
	if _, err := os.Stat("/sys/class/net/vcan0"); err == nil && os.Getenv("BERTH_HIL") == "" {
		t.Skip("this host has a vcan0 already; the test makes its own (run it in the HIL VM: make hil)")
	}
	addVcan(t, "vcan0")
	images := t.TempDir()
	run(t, need(t, "mkimage"), "-only", "busybox", "-o", images)

	d := startBerthd(t, "--board", board, "--plugin-dir", filepath.Dir(need(t, "berth-plugin-socketcan")))
	if !strings.Contains(d.log.String(), "native CAN available") {
		missing(t, "berthd serves no native CAN here:\n%s", d.log.String())
	}
	d.berth(t, "image", "import", filepath.Join(images, "busybox.tar"))
	pb := filepath.Join(t.TempDir(), "native.hcl")
	if err := os.WriteFile(pb, []byte(nativePlaybook), 0o644); err != nil {
		t.Fatal(err)
	}
	d.berth(t, "up", pb)
	t.Cleanup(func() { _, _ = tryRun(d.berthPath, "--host", d.socket, "down", "nat") })
	ps := d.ps(t)
	if len(ps) != 1 || ps[0].State != "running" {
		t.Fatalf("berth ps after up = %+v\nberthd log:\n%s", ps, d.log.String())
	}
	if strings.Contains(d.log.String(), "served through the broker") {
		t.Fatalf("the native grant fell back to the broker:\n%s", d.log.String())
	}

	// A raw CAN socket on the container's interface, opened in its namespace.
	fd := canSocketIn(t, fmt.Sprintf("/proc/%d/ns/net", ps[0].PID), "body")

	// Receive: 0x250 is outside the grant, so the first frame is 0x150.
	run(t, "cansend", "vcan0", "250#02")
	run(t, "cansend", "vcan0", "150#01")
	if id := readID(t, fd); id != 0x150 {
		t.Errorf("the container's body heard 0x%X first, want 0x150 (0x250 is not granted)", id)
	}

	// Send: 0x124 is refused by the rules, so vcan0 sees 0x123 first.
	dump := dumpOne(t, "vcan0")
	writeFrame(t, fd, 0x124, 0xBB)
	writeFrame(t, fd, 0x123, 0xAA)
	if got, want := logFrame(t, dump.wait(t)), "vcan0 123#AA"; got != want {
		t.Errorf("candump vcan0 got %q after the container sent 0x124 then 0x123, want %q", got, want)
	}

	if out := cangwList(t, cangw); !strings.Contains(out, "-s vcan0 -d bc-") || !strings.Contains(out, "-d vcan0") {
		t.Errorf("cangw -L lacks berth's rules between vcan0 and a bc- link:\n%s", out)
	}
	if out := d.berth(t, "devices"); !strings.Contains(out, "body (native)") || !strings.Contains(out, "nat/ecu") {
		t.Errorf("berth devices lacks the native session:\n%s", out)
	}

	// berthd crashes and comes back: it adopts the container and its
	// native link, which carries frames on through the socket opened
	// before (a new link would have a new index, and that socket would
	// hear nothing).
	links, _ := filepath.Glob("/sys/class/net/bc-*")
	d.crashAndRestart(t)
	if again := d.ps(t); len(again) != 1 || again[0].PID != ps[0].PID || again[0].State != "running" {
		t.Fatalf("berth ps after berthd's restart = %+v, want the same container running (pid %d)\nberthd log:\n%s", again, ps[0].PID, d.log.String())
	}
	if after, _ := filepath.Glob("/sys/class/net/bc-*"); !slices.Equal(after, links) {
		t.Errorf("bc- links after berthd's restart: %v, before: %v (want the same, adopted)", after, links)
	}
	run(t, "cansend", "vcan0", "260#03")
	run(t, "cansend", "vcan0", "160#04")
	if id := readID(t, fd); id != 0x160 {
		t.Errorf("after berthd's restart the container's body heard 0x%X first, want 0x160 (0x260 is not granted)", id)
	}
	// The kernel's counters outlive berthd: two frames in, one sent, one
	// refused (0x124), on the adopted link.
	want := nativeCounters{Open: 1, Received: 2, Delivered: 2, Sent: 1, Refused: 1}
	if got := nativeSession(t, d); got != want {
		t.Errorf("berth devices after berthd's restart: native session %+v, want %+v", got, want)
	}

	unix.Close(fd)
	d.berth(t, "down", "nat")
	if left, _ := filepath.Glob("/sys/class/net/bc-*"); len(left) > 0 {
		t.Errorf("links left after berth down: %v", left)
	}
	if out := cangwList(t, cangw); strings.Contains(out, "bc-") {
		t.Errorf("can-gw rules left after berth down:\n%s", out)
	}
	// berth devices keeps what the closed link counted.
	want.Open = 0
	if got := nativeSession(t, d); got != want {
		t.Errorf("berth devices after berth down: native session %+v, want %+v", got, want)
	}
}

// nativeCounters are the counters of a native session in `berth devices --json`.
type nativeCounters struct {
	Open                                        int
	Received, Delivered, Dropped, Sent, Refused uint64
}

// nativeSession returns the counters of the one native session on can0.
func nativeSession(t *testing.T, d *daemon) nativeCounters {
	t.Helper()
	out := d.berth(t, "devices", "--json")
	var ds struct {
		Devices []struct {
			Name     string
			Sessions []struct {
				Container, Grant string
				nativeCounters
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &ds); err != nil {
		t.Fatalf("berth devices --json: %v\n%s", err, out)
	}
	for _, dev := range ds.Devices {
		for _, s := range dev.Sessions {
			if dev.Name == "can0" && s.Grant == "body (native)" && s.Container == "nat/ecu" {
				return s.nativeCounters
			}
		}
	}
	t.Fatalf("berth devices --json has no native session nat/ecu body on can0:\n%s", out)
	return nativeCounters{}
}

// canSocketIn opens a raw CAN socket bound to ifname inside the network
// namespace at netns (the socket stays in it) with a receive timeout.
func canSocketIn(t *testing.T, netns, ifname string) int {
	t.Helper()
	fd := -1
	err := network.InNetNS(netns, func() error {
		s, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW, unix.CAN_RAW)
		if err != nil {
			return fmt.Errorf("CAN socket: %w", err)
		}
		idx, err := ifIndex(s, ifname)
		if err != nil {
			unix.Close(s)
			return fmt.Errorf("the container has no interface %s: %w", ifname, err)
		}
		if err := unix.Bind(s, &unix.SockaddrCAN{Ifindex: idx}); err != nil {
			unix.Close(s)
			return fmt.Errorf("bind %s: %w", ifname, err)
		}
		fd = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(cmdTimeout))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

// ifIndex asks the kernel for ifname's index in the socket's namespace.
func ifIndex(fd int, ifname string) (int, error) {
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

// readID reads one classical frame and returns its ID.
func readID(t *testing.T, fd int) uint32 {
	t.Helper()
	buf := make([]byte, 16)
	if _, err := unix.Read(fd, buf); err != nil {
		t.Fatalf("read the container's CAN socket: %v", err)
	}
	return binary.NativeEndian.Uint32(buf) & unix.CAN_SFF_MASK
}

// writeFrame sends a classical frame with one data byte.
func writeFrame(t *testing.T, fd int, id uint32, b byte) {
	t.Helper()
	buf := make([]byte, 16)
	binary.NativeEndian.PutUint32(buf, id)
	buf[4], buf[8] = 1, b
	if _, err := unix.Write(fd, buf); err != nil {
		t.Fatalf("send 0x%X from the container: %v", id, err)
	}
}
