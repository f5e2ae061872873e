package cannative

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/broker"
	"github.com/berth-io/berth/core/network"
)

// These tests need the kernel's vcan, vxcan and can-gw (see needKernel):
// they run in the HIL VM, `make hil HIL_PKGS=./core/cannative/...`.

const instance = "hiltest"

// quiet is how long a test waits to be sure a frame does not arrive after
// one sent later has: frames of one path keep their order, so this only
// covers reordering across CPUs.
const quiet = 200 * time.Millisecond

func mustFilters(t testing.TB, ss ...string) broker.Filters {
	t.Helper()
	fs, err := broker.ParseFilters(ss)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// mustAttach attaches and closes the link at the end of the test.
func mustAttach(t testing.TB, a Attachment) *Link {
	t.Helper()
	if a.Instance == "" {
		a.Instance = instance
	}
	l, err := Attach(context.Background(), a)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// expect reads from s until it has the frames want, in order, and fails on
// any other frame, then waits quiet for strays.
func expect(t *testing.T, s *canSock, want ...frame) {
	t.Helper()
	for i, w := range want {
		f, ok := s.recv(t, 5*time.Second)
		if !ok {
			t.Fatalf("%s: frame %d: nothing received, want %v", s.where, i, w)
		}
		if f.String() != w.String() {
			t.Fatalf("%s: frame %d is %v, want %v (a frame outside the grant crossed, or one was lost)", s.where, i, f, w)
		}
	}
	if f, ok := s.recv(t, quiet); ok {
		t.Fatalf("%s: unexpected frame %v after %d expected ones", s.where, f, len(want))
	}
}

// stats reads a link's counters.
func stats(t *testing.T, l *Link) Stats {
	t.Helper()
	s, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func std(id uint32, data ...byte) frame { return frame{id: id, data: data} }
func ext(id uint32, data ...byte) frame { return frame{id: id | canEFFFlag, data: data} }
func rtr(id uint32) frame               { return frame{id: id | canRTRFlag} }
func fdf(id uint32, data ...byte) frame { return frame{id: id, data: data, fd: true} }

// TestFiltersHold: a frame outside the receive filters never reaches the
// container; a frame with an ID outside the send filters sent inside never
// reaches the bus; granted ones pass both ways; the counters say so.
func TestFiltersHold(t *testing.T) {
	needKernel(t)
	addVcan(t, "bcbus0", false)
	ns := newNetNS(t, "app")
	g := broker.Grant{
		Name: "body", Device: "can0",
		Receive: mustFilters(t, "0x100-0x1FF", "0x7DF", "0x18DAF100/0x1FFFFF00", "0x120-0x12F"),
		Send:    mustFilters(t, "0x7E0", "0x200-0x20F"),
	}
	l := mustAttach(t, Attachment{Bus: "bcbus0", Netns: ns, Grant: g, Container: "app"})
	if l.IfName() != "body" || l.FD() {
		t.Fatalf("link %s, FD %v; want body, classical", l.IfName(), l.FD())
	}
	checkIface(t, ns, "body", classicMTU)
	checkIface(t, "", l.HostName(), classicMTU)

	in := dialCAN(t, ns, "body", sockOpt{})
	bus := dialCAN(t, "", "bcbus0", sockOpt{})

	toContainer := []struct {
		f    frame
		pass bool
	}{
		{std(0x0FF, 1), false},
		{std(0x100, 2), true},
		{std(0x123, 3), true}, // in two overlapping filters: crosses once
		{rtr(0x150), true},
		{std(0x1FF, 4), true},
		{std(0x200, 5), false},
		{ext(0x100, 6), false}, // a granted number, but extended
		{std(0x7DE, 7), false},
		{std(0x7DF, 8), true},
		{ext(0x18DAF1AA, 9), true},
		{ext(0x18DAF200, 10), false},
		{std(0x7E0, 11), false}, // sendable, not receivable
	}
	var want []frame
	for _, c := range toContainer {
		bus.send(t, c.f)
		if c.pass {
			want = append(want, c.f)
		}
	}
	expect(t, in, want...)

	toBus := []struct {
		f    frame
		pass bool
	}{
		{std(0x7E0, 1), true},
		{std(0x7E1, 2), false},
		{std(0x205, 3), true},
		{std(0x210, 4), false},
		{std(0x100, 5), false}, // receivable, not sendable
		{ext(0x7E0, 6), false},
		{rtr(0x20F), true},
	}
	want = want[:0]
	for _, c := range toBus {
		in.send(t, c.f)
		if c.pass {
			want = append(want, c.f)
		}
	}
	expect(t, bus, want...)

	got := stats(t, l)
	wantStats := Stats{Received: 6, Sent: 3, Refused: 4}
	if got != wantStats {
		t.Errorf("stats %+v, want %+v", got, wantStats)
	}
}

// checkIface checks that ifname in the namespace ns ("" for the test's) is
// a CAN interface, up, with the MTU mtu.
func checkIface(t *testing.T, ns, ifname string, mtu int) {
	t.Helper()
	err := network.InNetNS(ns, func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		if !isCAN(l) || l.Attrs().Flags&unix.IFF_UP == 0 || l.Attrs().MTU != mtu {
			return fmt.Errorf("%s is %s, flags %v, MTU %d; want CAN, up, MTU %d", ifname, l.Attrs().EncapType, l.Attrs().Flags, l.Attrs().MTU, mtu)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("interface %s in %q: %v", ifname, ns, err)
	}
}

// TestContainersHearEachOther: what one container sends reaches the bus
// and every other container whose receive filters take it, but not the
// sender's own interface (a socket does not hear itself); sockets of one
// container hear each other, as on any CAN interface.
func TestContainersHearEachOther(t *testing.T) {
	needKernel(t)
	addVcan(t, "bcbus1", false)
	nsA, nsB := newNetNS(t, "a"), newNetNS(t, "b")
	all := mustFilters(t, "0x100-0x1FF")
	mustAttach(t, Attachment{Bus: "bcbus1", Netns: nsA, Grant: broker.Grant{Name: "body", Device: "can0", Receive: all, Send: all}, Container: "a"})
	mustAttach(t, Attachment{Bus: "bcbus1", Netns: nsB, Grant: broker.Grant{Name: "body", Device: "can0", Receive: mustFilters(t, "0x100-0x17F")}, Container: "b"})

	a1 := dialCAN(t, nsA, "body", sockOpt{})
	a2 := dialCAN(t, nsA, "body", sockOpt{})
	b := dialCAN(t, nsB, "body", sockOpt{})
	bus := dialCAN(t, "", "bcbus1", sockOpt{})

	a1.send(t, std(0x123, 1))
	a1.send(t, std(0x180, 2)) // outside b's receive filter
	expect(t, bus, std(0x123, 1), std(0x180, 2))
	expect(t, b, std(0x123, 1))
	expect(t, a2, std(0x123, 1), std(0x180, 2)) // the kernel's local loopback in a's namespace
	expect(t, a1)                               // no echo of its own frames, from the bus or locally

	bus.send(t, std(0x124, 3))
	expect(t, a1, std(0x124, 3))
	expect(t, a2, std(0x124, 3))
	expect(t, b, std(0x124, 3))
}

// TestFD: on an FD bus an FD grant gives an FD interface and FD frames
// cross both ways; a classical grant gives a classical interface and no FD
// frame crosses.
func TestFD(t *testing.T) {
	needKernel(t)
	addVcan(t, "bcfd0", true)
	nsFD, nsClassic := newNetNS(t, "fd"), newNetNS(t, "classic")
	ids := mustFilters(t, "0x100-0x1FF")
	lfd := mustAttach(t, Attachment{Bus: "bcfd0", Netns: nsFD, Grant: broker.Grant{Name: "pt", Device: "can1", Receive: ids, Send: ids, FD: true}})
	lc := mustAttach(t, Attachment{Bus: "bcfd0", Netns: nsClassic, Grant: broker.Grant{Name: "pt", Device: "can1", Receive: ids, Send: ids}})
	if !lfd.FD() || lc.FD() {
		t.Fatalf("FD() = %v for the FD grant and %v for the classical one", lfd.FD(), lc.FD())
	}
	checkIface(t, nsFD, "pt", fdMTU)
	checkIface(t, nsClassic, "pt", classicMTU)

	fd := dialCAN(t, nsFD, "pt", sockOpt{fd: true})
	classic := dialCAN(t, nsClassic, "pt", sockOpt{fd: true})
	bus := dialCAN(t, "", "bcfd0", sockOpt{fd: true})

	big := make([]byte, 64)
	for i := range big {
		big[i] = byte(i)
	}
	bus.send(t, fdf(0x111, big...))
	bus.send(t, std(0x112, 1))
	bus.send(t, fdf(0x211, 2)) // outside the filter
	expect(t, fd, fdf(0x111, big...), std(0x112, 1))
	expect(t, classic, std(0x112, 1))

	fd.send(t, fdf(0x133, big[:48]...))
	fd.send(t, fdf(0x233, 3)) // outside the filter
	fd.send(t, std(0x134, 4))
	expect(t, bus, fdf(0x133, big[:48]...), std(0x134, 4))
	expect(t, classic, std(0x134, 4))
}

// TestErrorFrames: the bus's error frames reach a container whose grant
// has ErrorFrames, and no other; a container cannot put one on the bus.
func TestErrorFrames(t *testing.T) {
	needKernel(t)
	addVcan(t, "bcerr0", false)
	nsErr, nsNone := newNetNS(t, "err"), newNetNS(t, "none")
	ids := mustFilters(t, "*")
	mustAttach(t, Attachment{Bus: "bcerr0", Netns: nsErr, Grant: broker.Grant{Name: "diag", Device: "can0", Receive: ids, Send: ids, ErrorFrames: true}})
	mustAttach(t, Attachment{Bus: "bcerr0", Netns: nsNone, Grant: broker.Grant{Name: "diag", Device: "can0", Receive: ids, Send: ids}})
	withErr := dialCAN(t, nsErr, "diag", sockOpt{errFrames: true})
	without := dialCAN(t, nsNone, "diag", sockOpt{errFrames: true})
	bus := dialCAN(t, "", "bcerr0", sockOpt{errFrames: true})

	busOff := frame{id: canERRFlag | 0x40, data: make([]byte, 8)} // CAN_ERR_BUSOFF
	bus.send(t, busOff)
	bus.send(t, std(0x321, 1))
	expect(t, withErr, busOff, std(0x321, 1))
	expect(t, without, std(0x321, 1))

	withErr.send(t, busOff)
	withErr.send(t, std(0x322, 2))
	expect(t, bus, std(0x322, 2))
}

// TestUpdate: a changed grant takes effect on the running link: rules it
// no longer needs go, new ones come, the kernel holds exactly the new set;
// a change of fd is refused.
func TestUpdate(t *testing.T) {
	needKernel(t)
	addVcan(t, "bcbus7", false)
	ns := newNetNS(t, "app")
	g := broker.Grant{Name: "body", Device: "can0", Receive: mustFilters(t, "0x100-0x1FF"), Send: mustFilters(t, "0x7E0")}
	l := mustAttach(t, Attachment{Bus: "bcbus7", Netns: ns, Grant: g, Container: "app"})
	in := dialCAN(t, ns, "body", sockOpt{})
	bus := dialCAN(t, "", "bcbus7", sockOpt{})

	g.Receive = mustFilters(t, "0x100-0x17F", "0x300")
	g.Send = mustFilters(t, "0x7E1")
	if err := l.Update(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	rules, err := listRules()
	if err != nil {
		t.Fatal(err)
	}
	var mine []gwRule
	for _, r := range rules {
		if r.Src == l.hostIndex || r.Dst == l.hostIndex {
			mine = append(mine, r)
		}
	}
	if want := l.Rules(); len(mine) != len(want) || len(want) != 3 {
		t.Fatalf("kernel holds %v, want the 3 rules of %v", mine, want)
	}
	for _, r := range l.Rules() {
		if !slices.ContainsFunc(mine, l.bind(r).same) {
			t.Errorf("rule %v not in the kernel: %v", r, mine)
		}
	}

	for _, f := range []frame{std(0x101, 1), std(0x180, 2), std(0x300, 3)} {
		bus.send(t, f)
	}
	expect(t, in, std(0x101, 1), std(0x300, 3))
	in.send(t, std(0x7E0, 4))
	in.send(t, std(0x7E1, 5))
	expect(t, bus, std(0x7E1, 5))

	g.FD = true
	addVcan(t, "bcfd7", true)
	lfd := mustAttach(t, Attachment{Bus: "bcfd7", Netns: ns, IfName: "fd", Grant: g})
	g.FD = false
	if err := lfd.Update(context.Background(), g); !errors.Is(err, ErrInvalidAttachment) || !strings.Contains(err.Error(), "attach again") {
		t.Errorf("Update dropping fd: %v, want ErrInvalidAttachment saying to attach again", err)
	}
}

// TestProcNetns: a container named by its process's /proc/PID/ns/net, as
// a runtime hands it over, works like a bind-mounted namespace file.
func TestProcNetns(t *testing.T) {
	needKernel(t)
	addVcan(t, "bcbus8", false)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("no sleep to run as the container's process: %v", err)
	}
	proc := exec.Command(sleep, "60")
	proc.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Process.Kill()
		proc.Wait()
	})
	ns := fmt.Sprintf("/proc/%d/ns/net", proc.Process.Pid)
	ids := mustFilters(t, "0x100-0x1FF")
	mustAttach(t, Attachment{Bus: "bcbus8", Netns: ns, Grant: broker.Grant{Name: "body", Device: "can0", Receive: ids, Send: ids}})
	in := dialCAN(t, ns, "body", sockOpt{})
	bus := dialCAN(t, "", "bcbus8", sockOpt{})
	bus.send(t, std(0x1AB, 1))
	expect(t, in, std(0x1AB, 1))
	in.send(t, std(0x1AC, 2))
	expect(t, bus, std(0x1AC, 2))
}
