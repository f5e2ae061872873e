package cannative

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/network"
)

// The tests in this file's callers need a kernel with vcan, vxcan and
// can-gw, and root. On a host without them they skip with the reason;
// inside the HIL VM (guestEnv set) a lack fails them instead.

// guestEnv is set in the HIL VM (core/guestEnv).
const guestEnv = "BERTH_HIL"

var (
	kernelOnce   sync.Once
	kernelReason string
)

// needKernel skips (on a host) or fails (in the HIL VM) a test when the
// kernel cannot run the native path. In the VM it first reloads can-gw
// with max_hops=2 if it runs with fewer hops (see MinHops).
func needKernel(t testing.TB) {
	t.Helper()
	kernelOnce.Do(func() { kernelReason = kernelLacks() })
	if kernelReason == "" {
		return
	}
	if os.Getenv(guestEnv) != "" {
		t.Fatalf("in the HIL VM: %s", kernelReason)
	}
	t.Skipf("%s; these tests run in the HIL VM: make hil HIL_PKGS=./core/cannative/...", kernelReason)
}

func kernelLacks() string {
	if os.Geteuid() != 0 {
		return "needs root: creates vcan and vxcan interfaces, namespaces and can-gw rules"
	}
	if os.Getenv(guestEnv) != "" {
		if err := raiseHops(); err != nil {
			return err.Error()
		}
	}
	if err := Supported(); err != nil {
		return err.Error()
	}
	return ""
}

// raiseHops reloads can_gw with max_hops=MinHops in the HIL VM, whose init
// loads it with the kernel's default of 1. The guest keeps its modules in
// /lib/modules/NAME.ko.
func raiseHops() error {
	if hops, err := MaxHops(); err == nil && hops >= MinHops {
		return nil
	}
	if err := unix.DeleteModule("can_gw", unix.O_NONBLOCK); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("rmmod can_gw: %w", err)
	}
	f, err := os.Open("/lib/modules/can_gw.ko")
	if err != nil {
		return fmt.Errorf("reload can_gw: %w", err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), fmt.Sprintf("max_hops=%d", MinHops), 0); err != nil {
		return fmt.Errorf("insmod can_gw max_hops=%d: %w", MinHops, err)
	}
	return nil
}

// addVcan creates a vcan interface, up, deleted at the end of the test:
// MTU 72 when fd, else 16 (the kernel's default for vcan varies).
func addVcan(t testing.TB, name string, fd bool) *netlink.GenericLink {
	t.Helper()
	l := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: name}, LinkType: "vcan"}
	if err := netlink.LinkAdd(l); err != nil {
		t.Fatalf("ip link add %s type vcan: %v", name, err)
	}
	t.Cleanup(func() {
		if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
			t.Errorf("ip link del %s: %v", name, err)
		}
	})
	mtu := classicMTU
	if fd {
		mtu = fdMTU
	}
	if err := netlink.LinkSetMTU(l, mtu); err != nil {
		t.Fatalf("ip link set %s mtu %d: %v", name, mtu, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatalf("ip link set %s up: %v", name, err)
	}
	return l
}

// newNetNS makes a network namespace file, as berthd does for a
// container (bind-mounted from a thread that unshared its namespace),
// unmounted at the end of the test. core/network.NewNetNS does the same
// but asks netlink for every protocol family, and the HIL kernel lacks
// some (EPROTONOSUPPORT).
func newNetNS(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	err := network.InNewNetNS(func() error {
		return unix.Mount(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), path, "none", unix.MS_BIND, "")
	})
	if err != nil {
		t.Fatalf("create netns %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			t.Errorf("unmount netns %s: %v", path, err)
		}
	})
	return path
}

// canSock is a raw CAN socket bound to one interface, possibly in another
// namespace, like a SocketCAN program's.
type canSock struct {
	fd     int
	where  string
	anyCPU bool
}

type sockOpt struct {
	fd, errFrames bool
	// anyCPU lets send run on any CPU. By default a socket sends from
	// CPU 0 only: a virtual CAN interface receives a frame on the CPU
	// that sent it (netif_rx queues per CPU), so frames sent from two
	// CPUs can overtake each other, and the tests check order.
	anyCPU bool
}

// dialCAN opens a raw CAN socket on ifname in the namespace at ns ("" for
// the test's own), closed at the end of the test.
func dialCAN(t testing.TB, ns, ifname string, o sockOpt) *canSock {
	t.Helper()
	s := &canSock{fd: -1, where: ifname, anyCPU: o.anyCPU}
	if ns != "" {
		s.where = ifname + " in " + filepath.Base(ns)
	}
	err := network.InNetNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.CAN_RAW)
		if err != nil {
			return err
		}
		s.fd = fd
		if o.fd {
			if err := unix.SetsockoptInt(fd, unix.SOL_CAN_RAW, unix.CAN_RAW_FD_FRAMES, 1); err != nil {
				return err
			}
		}
		if o.errFrames {
			if err := unix.SetsockoptInt(fd, unix.SOL_CAN_RAW, unix.CAN_RAW_ERR_FILTER, unix.CAN_ERR_MASK); err != nil {
				return err
			}
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
		return unix.Bind(fd, &unix.SockaddrCAN{Ifindex: ifi.Index})
	})
	if s.fd >= 0 {
		t.Cleanup(s.close)
	}
	if err != nil {
		t.Fatalf("raw CAN socket on %s: %v", s.where, err)
	}
	return s
}

// close closes the socket; safe to call twice.
func (s *canSock) close() {
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// frame is a CAN frame as a raw socket reads and writes it.
type frame struct {
	id   uint32 // can_id with flags
	data []byte
	fd   bool
}

func (f frame) String() string {
	if f.fd {
		return fmt.Sprintf("%08X##%X", f.id, f.data)
	}
	return fmt.Sprintf("%08X#%X", f.id, f.data)
}

func (f frame) bytes() []byte {
	n := classicMTU
	if f.fd {
		n = fdMTU
	}
	b := make([]byte, n)
	binary.NativeEndian.PutUint32(b, f.id)
	b[4] = byte(len(f.data))
	if f.fd {
		b[5] = 0x04 // CANFD_FDF
	}
	copy(b[8:], f.data)
	return b
}

func (s *canSock) send(t testing.TB, f frame) {
	t.Helper()
	if !s.anyCPU {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread() // the thread stays on CPU 0, which is harmless
		var cpu0 unix.CPUSet
		cpu0.Set(0)
		if err := unix.SchedSetaffinity(0, &cpu0); err != nil {
			t.Fatalf("send on %s: run on CPU 0: %v", s.where, err)
		}
	}
	for {
		_, err := unix.Write(s.fd, f.bytes())
		if errors.Is(err, unix.ENOBUFS) {
			time.Sleep(100 * time.Microsecond) // transmit queue full: a bounded back-off
			continue
		}
		if err != nil {
			t.Fatalf("send %v on %s: %v", f, s.where, err)
		}
		return
	}
}

// recv reads one frame, waiting at most d; ok is false on a timeout.
func (s *canSock) recv(t testing.TB, d time.Duration) (f frame, ok bool) {
	t.Helper()
	f, ok, err := s.read(d)
	if err != nil {
		t.Fatal(err)
	}
	return f, ok
}

// read is recv for any goroutine: it returns errors instead of failing.
func (s *canSock) read(d time.Duration) (f frame, ok bool, err error) {
	pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(d)
	for {
		left := max(time.Until(deadline), 0)
		n, err := unix.Poll(pfd, int(left.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return frame{}, false, fmt.Errorf("poll %s: %w", s.where, err)
		}
		if n == 0 {
			return frame{}, false, nil
		}
		break
	}
	b := make([]byte, fdMTU)
	n, err := unix.Read(s.fd, b)
	if err != nil {
		return frame{}, false, fmt.Errorf("read %s: %w", s.where, err)
	}
	f = frame{id: binary.NativeEndian.Uint32(b), fd: n == fdMTU}
	f.data = append([]byte(nil), b[8:8+int(b[4])]...)
	return f, true, nil
}
