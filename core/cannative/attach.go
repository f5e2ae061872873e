package cannative

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/broker"
	"github.com/berth-io/berth/core/network"
)

// Attachment is one CAN grant of one container, to be served natively.
type Attachment struct {
	// Bus is the host's CAN interface the grant's device is ("can0",
	// "vcan0"): the board device's interface, not its board name.
	Bus string
	// Netns is the container's network namespace: a bind-mounted netns
	// file or /proc/PID/ns/net.
	Netns string
	// IfName is the interface the container gets; empty means the
	// grant's name, so `can "body" { ... }` gives the container an
	// interface called body.
	IfName string
	// Grant is what the container may receive and send.
	Grant broker.Grant
	// Instance is the berth instance identity (network.InstanceID of
	// berthd's state directory); it goes into the host link's name and
	// mark, and Cleanup takes it.
	Instance string
	// Container names the container in errors; it is not used otherwise.
	Container string
}

// where prefixes an attachment's errors: which container, grant and bus.
func (a Attachment) where() string {
	c := a.Container
	if c == "" {
		c = "netns " + a.Netns
	}
	return fmt.Sprintf("container %s: native CAN grant %q on %s", c, a.Grant.Name, a.Bus)
}

// Link is a grant served natively: a vxcan pair whose peer is the
// container's interface and the can-gw rules compiled from the grant.
// Its methods are safe for concurrent use.
type Link struct {
	a         Attachment
	host      string
	hostIndex int
	busIndex  int
	busFD     bool
	fd        bool
	rules     []Rule

	mu     sync.Mutex
	closed bool
}

// IfName returns the interface name inside the container.
func (l *Link) IfName() string { return l.a.IfName }

// HostName returns the name of the vxcan end in the host namespace.
func (l *Link) HostName() string { return l.host }

// FD reports whether the link carries CAN FD frames: the grant asked for
// FD and the bus runs it. The container's interface has MTU 72 then, 16
// otherwise.
func (l *Link) FD() bool { return l.fd }

// Rules returns the compiled grant the link's can-gw rules carry.
func (l *Link) Rules() []Rule {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Rule(nil), l.rules...)
}

// Attach gives the container at a.Netns a CAN interface a.IfName on the
// bus a.Bus, narrowed to a.Grant: it creates a vxcan pair (host end
// HostName(a.Instance, a.Netns, a.IfName), marked as the instance's; the
// peer moved into the namespace and brought up), installs the grant's
// can-gw rules (see Compile) in the calling thread's network namespace,
// where the bus is, and then brings the host end up, so frames flow only
// once every rule is in place. The caller closes the Link when the
// container stops; deleting the namespace removes the pair and its rules
// too. A leftover host link of the same attachment (same instance, netns
// and name) is replaced; one marked by someone else is not touched and the
// error wraps ErrLinkNotOwned.
//
// In the container the interface behaves like one on a shared bus: its
// sockets hear each other (the kernel's local loopback) and every frame
// of the bus the receive filters take, including what other containers
// send, but not their own sends back from the bus.
//
// Call Supported once first. Attach needs CAP_NET_ADMIN. ctx is checked
// between kernel requests; when it ends, Attach undoes its work and fails
// with its error. Errors name the container, grant and bus; a kernel
// without vxcan or can-gw gives one wrapping ErrUnsupported, a grant the
// kernel cannot enforce one wrapping ErrNotNative, and a bad attachment
// one wrapping ErrInvalidAttachment. On error nothing is left.
func Attach(ctx context.Context, a Attachment) (*Link, error) {
	if a.IfName == "" {
		a.IfName = a.Grant.Name
	}
	l, err := attach(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.where(), err)
	}
	return l, nil
}

func attach(ctx context.Context, a Attachment) (*Link, error) {
	if err := checkInstance(a.Instance); err != nil {
		return nil, err
	}
	if err := CheckIfName(a.IfName); err != nil {
		if a.IfName == a.Grant.Name {
			return nil, fmt.Errorf("the grant's name is the container's interface name, so rename the grant: %w", err)
		}
		return nil, err
	}
	if a.Netns == "" {
		return nil, fmt.Errorf("no network namespace given: %w", ErrInvalidAttachment)
	}
	if _, err := Compile(a.Grant, false); err != nil {
		return nil, err // a bad grant, before asking the kernel anything
	}
	l, err := newLink(a)
	if err != nil {
		return nil, err
	}
	ns, err := openNetNS(a.Netns)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	mark := network.LinkMark(a.Instance)
	if err := replaceLeftover(l.host, mark); err != nil {
		return nil, err
	}
	nsh, err := netlink.NewHandleAt(netns.NsHandle(int(ns.Fd())), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", a.Netns, err)
	}
	defer nsh.Close()
	mtu := classicMTU
	if l.fd {
		mtu = fdMTU
	}
	if l.hostIndex, err = createPair(l.host, a.IfName, mtu, ns, nsh); err != nil {
		return nil, err
	}
	host, err := netlink.LinkByIndex(l.hostIndex)
	if err == nil && host.Attrs().Name != l.host {
		err = fmt.Errorf("index %d is %s", l.hostIndex, host.Attrs().Name)
	}
	if err == nil {
		err = netlink.LinkSetAlias(host, mark)
	}
	if err != nil {
		return nil, l.undo(fmt.Errorf("mark vxcan %s: %w", l.host, err))
	}
	peer, err := nsh.LinkByName(a.IfName)
	if err == nil {
		err = nsh.LinkSetUp(peer)
	}
	if err != nil {
		return nil, l.undo(fmt.Errorf("set %s up in %s: %w", a.IfName, a.Netns, err))
	}
	for _, r := range l.rules {
		if err := ctx.Err(); err != nil {
			return nil, l.undo(err)
		}
		if err := addRule(l.bind(r)); err != nil {
			return nil, l.undo(fmt.Errorf("rule %s: %w", r, err))
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return nil, l.undo(fmt.Errorf("set vxcan %s up: %w", l.host, err))
	}
	return l, nil
}

// Adopt returns the Link an earlier Attach of the same attachment made,
// for a berthd that restarts while its containers run: the host end
// HostName(a.Instance, a.Netns, a.IfName) must exist, be a vxcan and carry
// the instance's mark (else the error wraps ErrNoLink or ErrLinkNotOwned).
// The container's interface and its sockets stay as they are. Rules of the
// grant the kernel no longer has (can-gw reloaded) are added again; so
// Stats, Update and Close work as on the Link Attach returned.
func Adopt(a Attachment) (*Link, error) {
	if a.IfName == "" {
		a.IfName = a.Grant.Name
	}
	l, err := adopt(a)
	if err != nil {
		return nil, fmt.Errorf("%s: adopt: %w", a.where(), err)
	}
	return l, nil
}

func adopt(a Attachment) (*Link, error) {
	if err := checkInstance(a.Instance); err != nil {
		return nil, err
	}
	l, err := newLink(a)
	if err != nil {
		return nil, err
	}
	host := l.host
	hl, err := netlink.LinkByName(host)
	if isNotFound(err) {
		return nil, fmt.Errorf("host link %s: %w", host, ErrNoLink)
	}
	if err != nil {
		return nil, fmt.Errorf("look up host link %s: %w", host, err)
	}
	if mark := network.LinkMark(a.Instance); hl.Type() != "vxcan" || hl.Attrs().Alias != mark {
		return nil, fmt.Errorf("host link %s is a %s marked %q, not a vxcan marked %q: %w", host, hl.Type(), hl.Attrs().Alias, mark, ErrLinkNotOwned)
	}
	l.hostIndex = hl.Attrs().Index
	have, err := listRules()
	if err != nil {
		return nil, err
	}
	for _, r := range l.rules {
		want := l.bind(r)
		if slices.ContainsFunc(have, want.same) {
			continue
		}
		if err := addRule(want); err != nil {
			return nil, fmt.Errorf("rule %s: %w", r, err)
		}
	}
	return l, nil
}

// newLink returns a's Link before its host end exists: the bus looked up
// and the grant compiled for it.
func newLink(a Attachment) (*Link, error) {
	bus, busMTU, err := busLink(a.Bus)
	if err != nil {
		return nil, err
	}
	rules, err := Compile(a.Grant, busMTU >= fdMTU)
	if err != nil {
		return nil, err
	}
	return &Link{
		a:        a,
		host:     HostName(a.Instance, a.Netns, a.IfName),
		busIndex: bus,
		busFD:    busMTU >= fdMTU,
		fd:       a.Grant.FD && busMTU >= fdMTU,
		rules:    rules,
	}, nil
}

// bind places a compiled rule between the bus and the host end. Frames
// forwarded to the bus are echoed to its local sockets and rules (other
// containers, the SocketCAN plugin, candump), as a socket's own sends
// are; frames forwarded to the container keep their bus timestamp.
func (l *Link) bind(r Rule) gwRule {
	g := gwRule{Filter: r.Filter}
	switch r.Dir {
	case ToContainer:
		g.Src, g.Dst, g.Flags = l.busIndex, l.hostIndex, FlagSrcTimestamp
	case ToBus:
		g.Src, g.Dst, g.Flags = l.hostIndex, l.busIndex, FlagEcho
	}
	if r.FD {
		g.Flags |= FlagFD
	}
	return g
}

// undo deletes what a failed attach made and returns err, joined with any
// trouble cleaning up.
func (l *Link) undo(err error) error {
	if cerr := l.remove(); cerr != nil {
		return errors.Join(err, fmt.Errorf("clean up: %w", cerr))
	}
	return err
}

// Update serves the grant g on the link instead of its grant so far, for
// a playbook update that changes the grant of a running container: it
// deletes the can-gw rules g does not need, then adds those it needs anew.
// Rules both grants need stay, so frames they pass keep crossing; no frame
// crosses twice. g must keep FD as it was (it fixes the MTU of the
// container's interface); otherwise, or for a grant Compile refuses,
// nothing changes and the error says to attach again. On a kernel error
// the link is left with part of the change; close it or update again.
func (l *Link) Update(ctx context.Context, g broker.Grant) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	where := fmt.Sprintf("%s: update to %s", l.a.where(), g)
	if l.closed {
		return fmt.Errorf("%s: link closed", where)
	}
	if fd := g.FD && l.busFD; fd != l.fd {
		return fmt.Errorf("%s: the grant's fd changes from %v to %v, which changes the container's interface (MTU): close the link and attach again: %w", where, l.fd, fd, ErrInvalidAttachment)
	}
	rules, err := Compile(g, l.busFD)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	for _, r := range l.rules {
		if slices.Contains(rules, r) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		// EINVAL: the kernel has no such rule (any more); that is the goal.
		if err := deleteRule(l.bind(r)); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%s: rule %s: %w", where, r, err)
		}
	}
	old := l.rules
	l.rules = slices.DeleteFunc(slices.Clone(old), func(r Rule) bool { return !slices.Contains(rules, r) })
	for _, r := range rules {
		if slices.Contains(old, r) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if err := addRule(l.bind(r)); err != nil {
			return fmt.Errorf("%s: rule %s: %w", where, r, err)
		}
		l.rules = append(l.rules, r)
	}
	l.rules, l.a.Grant = rules, g
	return nil
}

// Close deletes the link's vxcan pair, which takes the container's
// interface with it, and the kernel drops the can-gw rules naming the host
// end (can-gw does so for every interface that goes away). A pair already
// gone (the namespace was deleted) is not an error. Safe to call twice;
// the second call returns nil.
func (l *Link) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if err := l.remove(); err != nil {
		return fmt.Errorf("%s: close: %w", l.a.where(), err)
	}
	return nil
}

// remove deletes the host end if it is still this link's. Its rules go
// with it; they are not deleted one by one first, which would only be
// slower, and a dump afterwards could not tell them from those of a new
// link that took the freed index.
func (l *Link) remove() error {
	if l.hostIndex == 0 {
		return nil
	}
	return deleteOwned(l.hostIndex, l.host, network.LinkMark(l.a.Instance))
}

// Stats is a link's traffic, from the kernel's can-gw and interface
// counters. can-gw counts in 32 bits, so they wrap on a long-lived link,
// and the counts of rules an Update removed are gone with them.
type Stats struct {
	// Received are frames forwarded from the bus to the container;
	// ReceiveDropped those the container's side refused.
	Received, ReceiveDropped uint64
	// Sent are frames the container sent that reached the bus;
	// SendDropped those the bus refused (down, queue full).
	Sent, SendDropped uint64
	// Refused are frames the container sent that no send filter allows:
	// what reached the host end and no rule forwarded.
	Refused uint64
}

// Stats reads the link's counters.
func (l *Link) Stats() (Stats, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s Stats
	if l.closed {
		return s, fmt.Errorf("%s: stats: link closed", l.a.where())
	}
	rules, err := listRules()
	if err != nil {
		return s, fmt.Errorf("%s: stats: %w", l.a.where(), err)
	}
	host, err := netlink.LinkByIndex(l.hostIndex)
	if err == nil && host.Attrs().Name != l.host {
		err = fmt.Errorf("index %d is %s now", l.hostIndex, host.Attrs().Name)
	}
	if err != nil {
		return s, fmt.Errorf("%s: stats: host end %s gone (the container's namespace was deleted?): %w", l.a.where(), l.host, err)
	}
	var toBus uint64
	for _, r := range rules {
		switch {
		case r.Src == l.busIndex && r.Dst == l.hostIndex:
			s.Received += uint64(r.Handled)
			s.ReceiveDropped += uint64(r.Dropped)
		case r.Src == l.hostIndex && r.Dst == l.busIndex:
			s.Sent += uint64(r.Handled)
			s.SendDropped += uint64(r.Dropped)
			toBus += uint64(r.Handled) + uint64(r.Dropped) + uint64(r.Deleted)
		}
	}
	if st := host.Attrs().Statistics; st != nil && st.RxPackets > toBus {
		s.Refused = st.RxPackets - toBus
	}
	return s, nil
}

// createPair makes the vxcan pair host–peer, peer in the namespace open
// as ns (nsh is a netlink handle there), and returns the interface index
// it gave both ends: one free in both namespaces. The index matters:
// can-gw does not forward a frame to the interface it came in on, judged
// by the index of the interface it was sent on, which for a frame the
// container sends is its end's. With one index for both ends, the bus's
// echo of a container's frame does not come back to that container, and
// its frames are never taken for the bus's own (were its end's index the
// bus's, can-gw would drop them on their way to the bus).
func createPair(host, peer string, mtu int, ns *os.File, nsh *netlink.Handle) (int, error) {
	const attempts = 8
	for range attempts {
		index, err := freeIndex(nsh)
		if err != nil {
			return 0, err
		}
		_, err = vxcanRequest(host, peer, index, mtu, int(ns.Fd())).Execute(unix.NETLINK_ROUTE, 0)
		switch {
		case err == nil:
			return index, nil
		case errors.Is(err, unix.EBUSY):
			continue // the index was taken meanwhile
		case errors.Is(err, unix.EEXIST):
			return 0, fmt.Errorf("create vxcan %s: the namespace already has an interface %q (another grant of the container with that name?): %w", host, peer, err)
		case errors.Is(err, unix.EOPNOTSUPP):
			return 0, fmt.Errorf("create vxcan %s: %w (the kernel has no vxcan: modprobe vxcan): %w", host, err, ErrUnsupported)
		}
		return 0, fmt.Errorf("create vxcan %s: %w", host, err)
	}
	return 0, fmt.Errorf("create vxcan %s: no interface index stayed free in both namespaces in %d attempts: %w", host, attempts, unix.EBUSY)
}

// freeIndex returns an interface index above every index in use in the
// calling thread's namespace and in nsh's.
func freeIndex(nsh *netlink.Handle) (int, error) {
	top := 0
	for _, list := range []func() ([]netlink.Link, error){netlink.LinkList, nsh.LinkList} {
		links, err := list()
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return 0, fmt.Errorf("list interfaces: %w", err)
		}
		for _, l := range links {
			top = max(top, l.Attrs().Index)
		}
	}
	return top + 1, nil
}

// busLink returns the index and MTU of the CAN interface bus.
func busLink(bus string) (index, mtu int, err error) {
	if bus == "" {
		return 0, 0, fmt.Errorf("no bus interface given: %w", ErrInvalidAttachment)
	}
	l, err := netlink.LinkByName(bus)
	if err != nil {
		if isNotFound(err) {
			return 0, 0, fmt.Errorf("bus interface %s not found: check the interface the board names for this device, and that it is up: %w", bus, ErrInvalidAttachment)
		}
		return 0, 0, fmt.Errorf("bus interface %s: %w", bus, err)
	}
	if !isCAN(l) {
		return 0, 0, fmt.Errorf("bus interface %s is not a CAN interface (it is %s): %w", bus, l.Type(), ErrInvalidAttachment)
	}
	return l.Attrs().Index, l.Attrs().MTU, nil
}

// isCAN reports whether l is a CAN interface (ARPHRD_CAN): a controller,
// vcan, vxcan, slcan.
func isCAN(l netlink.Link) bool {
	e := l.Attrs().EncapType
	return e == "can" || e == fmt.Sprintf("unknown%d", unix.ARPHRD_CAN)
}

// replaceLeftover deletes a vxcan link called name that carries mark or
// no mark (one a crash left between its creation and its marking): a
// leftover of the same attachment. Any other link of that name is not
// touched; the error wraps ErrLinkNotOwned.
func replaceLeftover(name, mark string) error {
	old, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up host link %s: %w", name, err)
	}
	if alias := old.Attrs().Alias; old.Type() != "vxcan" || (alias != mark && alias != "") {
		return fmt.Errorf("host link %s exists as %s marked %q, not a vxcan marked %q: delete it or use another instance id: %w", name, old.Type(), old.Attrs().Alias, mark, ErrLinkNotOwned)
	}
	if err := netlink.LinkDel(old); err != nil && !isNotFound(err) {
		return fmt.Errorf("replace leftover host link %s: %w", name, err)
	}
	return nil
}

// deleteOwned deletes the link at index if it is still called name and
// carries mark (or none); a link gone is not an error.
func deleteOwned(index int, name, mark string) error {
	l, err := netlink.LinkByIndex(index)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up host link %s: %w", name, err)
	}
	if l.Attrs().Name != name {
		return nil // gone, and the index reused by another link
	}
	return deleteMarked(l, name, mark)
}

// deleteMarked deletes l unless its alias marks it as another's than mark
// (no mark counts as ours: a crash between creation and marking).
func deleteMarked(l netlink.Link, name, mark string) error {
	if a := l.Attrs().Alias; a != mark && a != "" {
		return fmt.Errorf("delete host link %s: marked %q, not %q: %w", name, a, mark, ErrLinkNotOwned)
	}
	if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete host link %s: %w", name, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, syscall.ENODEV)
}
