package cannative

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/broker"
	"github.com/berth-io/berth/core/network"
)

// kernelState is what the kernel holds of a set of host links: which
// exist, and the can-gw rules naming their indexes.
type kernelState struct {
	links []string
	rules []gwRule
}

// stateOf reads the links named and the rules naming the indexes given.
func stateOf(t *testing.T, names []string, indexes []int) kernelState {
	t.Helper()
	var st kernelState
	for _, n := range names {
		if _, err := netlink.LinkByName(n); err == nil {
			st.links = append(st.links, n)
		} else if !isNotFound(err) {
			t.Fatal(err)
		}
	}
	rules, err := listRules()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if slices.Contains(indexes, r.Src) || slices.Contains(indexes, r.Dst) {
			st.rules = append(st.rules, r)
		}
	}
	return st
}

// toolCheck cross-checks with `ip link` and `cangw -L` (iproute2 or
// busybox, can-utils), when the VM has them, that the host links named
// are present (or absent) and that cangw lists rules on them (or none).
func toolCheck(t *testing.T, present bool, hosts ...string) {
	t.Helper()
	for _, tool := range []struct {
		name string
		args []string
	}{{"ip", []string{"link", "show"}}, {"cangw", []string{"-L"}}} {
		path, err := exec.LookPath(tool.name)
		if err != nil {
			t.Logf("cross-check with %s %s skipped: %s is not installed in this VM (can-utils/iproute2 in the HIL image)", tool.name, strings.Join(tool.args, " "), tool.name)
			continue
		}
		// cangw -L exits non-zero after a good listing (36 in the HIL
		// VM): judge it by what it writes to stderr.
		var stderr strings.Builder
		cmd := exec.Command(path, tool.args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil && (tool.name != "cangw" || stderr.Len() > 0) {
			t.Fatalf("%s %s: %v\n%s%s", tool.name, strings.Join(tool.args, " "), err, out, stderr.String())
		}
		for _, h := range hosts {
			if got := strings.Contains(string(out), h); got != present {
				t.Errorf("%s %s mentions %s: %v, want %v:\n%s", tool.name, strings.Join(tool.args, " "), h, got, present, out)
			}
		}
	}
}

// TestCloseRemovesEverything: Close leaves no interface (host end or
// container's) and no rule, by the netlink dump and by ip and cangw.
func TestCloseRemovesEverything(t *testing.T) {
	needKernel(t)
	addVcan(t, "bcbus2", true)
	ns := newNetNS(t, "app")
	ids := mustFilters(t, "0x100-0x1FF", "0x7DF")
	l, err := Attach(context.Background(), Attachment{Bus: "bcbus2", Netns: ns, Instance: instance,
		Grant: broker.Grant{Name: "body", Device: "can0", Receive: ids, Send: ids, FD: true, ErrorFrames: true}})
	if err != nil {
		t.Fatal(err)
	}
	idx := l.hostIndex
	st := stateOf(t, []string{l.HostName()}, []int{idx})
	if len(st.links) != 1 || len(st.rules) != len(l.Rules()) || len(l.Rules()) != 9 {
		t.Fatalf("after Attach: links %v, %d rules in the kernel, %d compiled; want 1 link and 9 rules", st.links, len(st.rules), len(l.Rules()))
	}
	for _, r := range l.Rules() {
		if !slices.ContainsFunc(st.rules, l.bind(r).same) {
			t.Errorf("rule %v not in the kernel: %v", r, st.rules)
		}
	}
	toolCheck(t, true, l.HostName())

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if st := stateOf(t, []string{l.HostName()}, []int{idx}); len(st.links)+len(st.rules) > 0 {
		t.Errorf("after Close: %+v left", st)
	}
	if err := network.InNetNS(ns, func() error {
		_, err := netlink.LinkByName("body")
		return err
	}); !isNotFound(err) {
		t.Errorf("after Close: body in the container's namespace: %v, want not found", err)
	}
	toolCheck(t, false, l.HostName())
}

// TestKernelDropsRules checks what Cleanup and Close rely on: deleting an
// interface drops the can-gw rules naming it, and deleting the container's
// namespace deletes the pair, host end included.
func TestKernelDropsRules(t *testing.T) {
	needKernel(t)
	addVcan(t, "bcbus3", false)
	ids := mustFilters(t, "0x100-0x1FF")
	g := broker.Grant{Name: "body", Device: "can0", Receive: ids, Send: ids}

	t.Run("host end deleted", func(t *testing.T) {
		l := mustAttach(t, Attachment{Bus: "bcbus3", Netns: newNetNS(t, "a"), Grant: g})
		host, err := netlink.LinkByName(l.HostName())
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkDel(host); err != nil {
			t.Fatal(err)
		}
		if st := stateOf(t, []string{l.HostName()}, []int{l.hostIndex}); len(st.links)+len(st.rules) > 0 {
			t.Errorf("after deleting %s: %+v left", l.HostName(), st)
		}
	})
	t.Run("namespace deleted", func(t *testing.T) {
		ns := newNetNS(t, "b")
		l := mustAttach(t, Attachment{Bus: "bcbus3", Netns: ns, Grant: g})
		if err := unix.Unmount(ns, unix.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
		// The kernel tears a namespace down in a work queue: poll, bounded.
		deadline := time.Now().Add(10 * time.Second)
		for {
			st := stateOf(t, []string{l.HostName()}, []int{l.hostIndex})
			if len(st.links)+len(st.rules) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("10 s after the namespace went: %+v left", st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestCleanup: after a crash (links never closed), Cleanup deletes every
// link of the instance but those kept, and nothing of other instances or
// unmarked links; the survivors still carry frames.
func TestCleanup(t *testing.T) {
	needKernel(t)
	addVcan(t, "bcbus4", false)
	ids := mustFilters(t, "0x100-0x1FF")
	g := broker.Grant{Name: "body", Device: "can0", Receive: ids, Send: ids}
	ctx := context.Background()
	var crashed []*Link
	for _, name := range []string{"a", "b", "kept"} {
		l, err := Attach(ctx, Attachment{Bus: "bcbus4", Netns: newNetNS(t, name), Grant: g, Instance: "crashed"})
		if err != nil {
			t.Fatal(err)
		}
		crashed = append(crashed, l) // never closed: berthd crashed
	}
	nsOther := newNetNS(t, "other")
	other := mustAttach(t, Attachment{Bus: "bcbus4", Netns: nsOther, Grant: g, Instance: "other"})
	// An unmarked vxcan with a berth-shaped name: not provably ours.
	unmarked := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: HostName("crashed", "/nowhere", "x")}, LinkType: "vxcan"}
	if err := netlink.LinkAdd(unmarked); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netlink.LinkDel(unmarked) })

	kept := crashed[2].HostName()
	deleted, err := Cleanup(ctx, "crashed", kept)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{crashed[0].HostName(), crashed[1].HostName()}
	slices.Sort(deleted)
	slices.Sort(want)
	if !slices.Equal(deleted, want) {
		t.Errorf("Cleanup deleted %v, want %v", deleted, want)
	}
	if st := stateOf(t, want, []int{crashed[0].hostIndex, crashed[1].hostIndex}); len(st.links)+len(st.rules) > 0 {
		t.Errorf("after Cleanup: %+v left", st)
	}
	toolCheck(t, false, want...)
	for _, l := range []*Link{crashed[2], other} {
		if st := stateOf(t, []string{l.HostName()}, []int{l.hostIndex}); len(st.links) != 1 || len(st.rules) != 2 {
			t.Errorf("Cleanup touched %s: %+v left, want the link and 2 rules", l.HostName(), st)
		}
	}
	if _, err := netlink.LinkByName(unmarked.Name); err != nil {
		t.Errorf("Cleanup deleted the unmarked link %s: %v", unmarked.Name, err)
	}

	// The other instance's link still works.
	in := dialCAN(t, nsOther, "body", sockOpt{})
	bus := dialCAN(t, "", "bcbus4", sockOpt{})
	bus.send(t, std(0x101, 1))
	expect(t, in, std(0x101, 1))

	// Without keep, the kept one goes too; a second run finds nothing.
	if deleted, err := Cleanup(ctx, "crashed"); err != nil || !slices.Equal(deleted, []string{kept}) {
		t.Errorf("Cleanup without keep: deleted %v, %v; want [%s]", deleted, err, kept)
	}
	if deleted, err := Cleanup(ctx, "crashed"); err != nil || len(deleted) > 0 {
		t.Errorf("Cleanup again: deleted %v, %v; want nothing", deleted, err)
	}
	for _, l := range crashed {
		if err := l.Close(); err != nil {
			t.Errorf("Close after Cleanup: %v", err)
		}
	}
}

// TestAttachReplacesLeftover: attaching the same grant again after a crash
// replaces the old pair.
func TestAttachReplacesLeftover(t *testing.T) {
	needKernel(t)
	addVcan(t, "bcbus5", false)
	ns := newNetNS(t, "app")
	ids := mustFilters(t, "0x100-0x1FF")
	a := Attachment{Bus: "bcbus5", Netns: ns, Grant: broker.Grant{Name: "body", Device: "can0", Receive: ids}, Instance: instance}
	old, err := Attach(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	l := mustAttach(t, a)
	if l.HostName() != old.HostName() {
		t.Fatalf("host names %s and %s for one attachment", old.HostName(), l.HostName())
	}
	// The old pair is gone with its rules: the name now has the new
	// link's index (which may be the old one's, freed), and the kernel
	// holds exactly the new link's rules on it.
	st := stateOf(t, []string{l.HostName()}, []int{l.hostIndex})
	if len(st.links) != 1 || len(st.rules) != len(l.Rules()) {
		t.Errorf("after attaching again: %+v, want one link and %d rules", st, len(l.Rules()))
	}
	in := dialCAN(t, ns, "body", sockOpt{})
	bus := dialCAN(t, "", "bcbus5", sockOpt{})
	bus.send(t, std(0x1AB, 1))
	expect(t, in, std(0x1AB, 1))
	if got := stats(t, l).Received; got != 1 {
		t.Errorf("received %d, want 1 (one link, one rule)", got)
	}
}

// TestAttachErrors: refusals name the container, grant and bus and say what
// to do; nothing is left behind.
func TestAttachErrors(t *testing.T) {
	needKernel(t)
	addVcan(t, "bcbus6", false)
	ns := newNetNS(t, "app")
	ids := mustFilters(t, "0x100-0x1FF")
	g := broker.Grant{Name: "body", Device: "can0", Receive: ids}
	mustAttach(t, Attachment{Bus: "bcbus6", Netns: ns, Grant: g, Container: "app"})
	notNS := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notNS, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A link with the name berth would use, made by someone else.
	squatted := newNetNS(t, "squatted")
	squat := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: HostName(instance, squatted, "body")}, LinkType: "vcan"}
	if err := netlink.LinkAdd(squat); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netlink.LinkDel(squat) })

	tests := []struct {
		name string
		a    Attachment
		want error
		text string
	}{
		{"same interface twice", Attachment{Bus: "bcbus6", Netns: ns, Grant: g, IfName: "body", Instance: "second"}, unix.EEXIST, `already has an interface "body"`},
		{"no bus", Attachment{Bus: "nosuchcan0", Netns: ns, Grant: g}, ErrInvalidAttachment, "bus interface nosuchcan0 not found"},
		{"bus not CAN", Attachment{Bus: "lo", Netns: ns, Grant: g}, ErrInvalidAttachment, "not a CAN interface"},
		{"not a namespace", Attachment{Bus: "bcbus6", Netns: notNS, Grant: g}, ErrInvalidAttachment, "want a network namespace"},
		{"no namespace file", Attachment{Bus: "bcbus6", Netns: notNS + ".missing", Grant: g}, os.ErrNotExist, "network namespace"},
		{"squatted host name", Attachment{Bus: "bcbus6", Netns: squatted, Grant: g}, ErrLinkNotOwned, "marked"},
	}
	hostLinks := func() []string {
		links, err := netlink.LinkList()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range links {
			if isHostName(l.Attrs().Name) {
				names = append(names, l.Attrs().Name)
			}
		}
		return names
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hostLinks()
			if tt.a.Instance == "" {
				tt.a.Instance = instance
			}
			tt.a.Container = "app"
			l, err := Attach(context.Background(), tt.a)
			if err == nil {
				l.Close()
				t.Fatal("Attach succeeded")
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) || !strings.Contains(err.Error(), `container app: native CAN grant "body" on `+tt.a.Bus) {
				t.Fatalf("Attach: %v\nwant an error wrapping %v, saying %q, naming container, grant and bus", err, tt.want, tt.text)
			}
			if after := hostLinks(); !slices.Equal(before, after) {
				t.Errorf("host links %v before a failed Attach, %v after", before, after)
			}
		})
	}
}

// TestAdopt: a restarted berthd takes over a link an earlier one attached.
// The container's socket keeps hearing the bus through it, a rule the
// kernel lost is added again, and the adopted Link counts, and closes,
// like the one Attach returned.
func TestAdopt(t *testing.T) {
	needKernel(t)
	addVcan(t, "bcbus7", false)
	ns := newNetNS(t, "app")
	a := Attachment{Bus: "bcbus7", Netns: ns, Grant: broker.Grant{Name: "body", Device: "can0",
		Receive: mustFilters(t, "0x100-0x1FF"), Send: mustFilters(t, "0x2A0")}, Instance: instance}
	first, err := Attach(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	in := dialCAN(t, ns, "body", sockOpt{})
	bus := dialCAN(t, "", "bcbus7", sockOpt{})

	// The earlier berthd is gone without closing its Link; one of its
	// rules is gone too.
	lost := first.bind(first.Rules()[0])
	if err := deleteRule(lost); err != nil {
		t.Fatal(err)
	}
	l, err := Adopt(a)
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	if l.HostName() != first.HostName() || l.hostIndex != first.hostIndex {
		t.Errorf("adopted %s (index %d), attached %s (index %d): want the same link", l.HostName(), l.hostIndex, first.HostName(), first.hostIndex)
	}
	if st := stateOf(t, []string{l.HostName()}, []int{l.hostIndex}); len(st.rules) != len(l.Rules()) {
		t.Errorf("kernel holds %d rules on the adopted link, want its %d", len(st.rules), len(l.Rules()))
	}
	bus.send(t, std(0x1AB, 1))
	bus.send(t, std(0x2AB, 2)) // not granted
	expect(t, in, std(0x1AB, 1))
	in.send(t, std(0x2A0, 3))
	expect(t, bus, std(0x2A0, 3))
	if s := stats(t, l); s.Received != 1 || s.Sent != 1 {
		t.Errorf("adopted link's stats %+v, want 1 received, 1 sent", s)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st := stateOf(t, []string{l.HostName()}, []int{l.hostIndex}); len(st.links) != 0 || len(st.rules) != 0 {
		t.Errorf("after closing the adopted link: %+v, want nothing", st)
	}

	// Nothing to adopt; a link of that name that is not berth's.
	if _, err := Adopt(a); !errors.Is(err, ErrNoLink) || !strings.Contains(err.Error(), `grant "body" on bcbus7`) {
		t.Errorf("Adopt of a closed link: %v, want ErrNoLink naming the grant and bus", err)
	}
	squatted := newNetNS(t, "squatted")
	squat := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: HostName(instance, squatted, "body")}, LinkType: "vcan"}
	if err := netlink.LinkAdd(squat); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netlink.LinkDel(squat) })
	a.Netns = squatted
	if _, err := Adopt(a); !errors.Is(err, ErrLinkNotOwned) {
		t.Errorf("Adopt of a link berth did not make: %v, want ErrLinkNotOwned", err)
	}
}
