package network

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, bridges and veths")
	}
}

// testNS creates a network namespace bound under a test temp dir, removed
// when the test ends, and returns its path.
func testNS(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := NewNetNS(path); err != nil {
		t.Fatalf("NewNetNS: %v", err)
	}
	t.Cleanup(func() {
		if err := DeleteNetNS(path); err != nil {
			t.Errorf("DeleteNetNS: %v", err)
		}
	})
	return path
}

// hostNS creates a fresh namespace standing in for the host, so no test
// touches the real host's links, and returns an open handle to it.
func hostNS(t *testing.T) netns.NsHandle {
	t.Helper()
	ns, err := netns.GetFromPath(testNS(t, "host"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

func newManager(t *testing.T, dir string, ns netns.NsHandle, opts ...Option) *Manager {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := NewManager(dir, log, append([]Option{WithHostNS(ns)}, opts...)...)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func ensure(t *testing.T, m *Manager, stack, name, subnet string) *Network {
	t.Helper()
	spec := NetworkSpec{Stack: stack, Name: name}
	if subnet != "" {
		spec.Subnet = netip.MustParsePrefix(subnet)
	}
	n, err := m.EnsureNetwork(t.Context(), spec)
	if err != nil {
		t.Fatalf("EnsureNetwork %s/%s: %v", stack, name, err)
	}
	return n
}

func attach(t *testing.T, m *Manager, stack, container, nsPath string, networks ...string) []Attachment {
	t.Helper()
	atts, err := m.Attach(t.Context(), stack, container, nsPath, networks)
	if err != nil {
		t.Fatalf("Attach %s: %v", container, err)
	}
	return atts
}

// linkNames lists the link names of a namespace given by handle, sorted.
func linkNames(t *testing.T, ns netns.NsHandle) []string {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names
}

func linkNamesAt(t *testing.T, path string) []string {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	return linkNames(t, ns)
}

// inNS runs f on a goroutine whose thread is moved into the namespace at
// path. The thread stays locked and dies with the goroutine, so no other
// goroutine ever runs in that namespace.
func inNS(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// listen opens a TCP listener on addr inside the namespace at path that
// answers each connection with "pong" and the caller's address.
func listen(t *testing.T, path string, addr netip.Addr) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	err := inNS(path, func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(addr, 0).String())
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", path, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "pong "+c.RemoteAddr().(*net.TCPAddr).IP.String())
			c.Close()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// dial connects from the namespace at path to to and returns what the
// listener answered.
func dial(path string, to netip.AddrPort) (string, error) {
	var conn net.Conn
	err := inNS(path, func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err = d.Dial("tcp4", to.String())
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(conn)
	return string(b), err
}

func TestNetNS(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "ns")
	if err := NewNetNS(path); err != nil {
		t.Fatalf("NewNetNS: %v", err)
	}
	if err := NewNetNS(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("NewNetNS on an existing path: %v, want fs.ErrExist", err)
	}

	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	self, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	if ns.Equal(self) {
		t.Error("the new namespace is the test's own")
	}
	self.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		t.Error("lo is down in the new namespace")
	}
	if got := linkNames(t, ns); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("new namespace has links %v, want only lo", got)
	}
	h.Close()
	ns.Close()

	for i := range 2 {
		if err := DeleteNetNS(path); err != nil {
			t.Fatalf("DeleteNetNS #%d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("netns file still there after DeleteNetNS: %v", err)
	}
	if err := DeleteNetNS(filepath.Join(t.TempDir(), "never")); err != nil {
		t.Errorf("DeleteNetNS of a path that never existed: %v", err)
	}
}

func TestConnectivity(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	m := newManager(t, t.TempDir(), hostNS(t))
	a := ensure(t, m, "car", "a", "10.89.7.0/24")
	b := ensure(t, m, "car", "b", "")
	if a.Gateway != netip.MustParseAddr("10.89.7.1") || a.Bridge != BridgeName(m.Instance(), "car", "a") {
		t.Errorf("network a = %+v", a)
	}
	if b.Subnet.Overlaps(a.Subnet) {
		t.Fatalf("allocated subnet %s overlaps %s", b.Subnet, a.Subnet)
	}

	ns1, ns2, ns3, ns4 := testNS(t, "c1"), testNS(t, "c2"), testNS(t, "c3"), testNS(t, "c4")
	a1 := attach(t, m, "car", "c1", ns1, "a")
	a2 := attach(t, m, "car", "c2", ns2, "a")
	a3 := attach(t, m, "car", "c3", ns3, "b")
	a4 := attach(t, m, "car", "c4", ns4, "a", "b")

	if a4[0].Interface != "eth0" || a4[0].Network != "a" || a4[1].Interface != "eth1" || a4[1].Network != "b" {
		t.Errorf("c4 attachments = %+v, want eth0 on a, eth1 on b", a4)
	}
	if got := linkNamesAt(t, ns4); !slices.Equal(got, []string{"eth0", "eth1", "lo"}) {
		t.Errorf("c4 links = %v", got)
	}
	for _, att := range [][]Attachment{a1, a2, a4[:1]} {
		if !a.Subnet.Contains(att[0].Address.Addr()) || att[0].Address.Bits() != 24 || att[0].Address.Addr() == a.Gateway {
			t.Errorf("address %s is not a container address of %s", att[0].Address, a.Subnet)
		}
	}

	l1 := listen(t, ns1, a1[0].Address.Addr())
	l3 := listen(t, ns3, a3[0].Address.Addr())

	tests := []struct {
		name    string
		from    string
		to      netip.AddrPort
		want    string // reply; empty when the dial must fail
		wantErr error
	}{
		{"same network", ns2, l1, "pong " + a2[0].Address.Addr().String(), nil},
		{"both networks to a", ns4, l1, "pong " + a4[0].Address.Addr().String(), nil},
		{"both networks to b", ns4, l3, "pong " + a4[1].Address.Addr().String(), nil},
		{"a to b", ns1, l3, "", syscall.ENETUNREACH},
		{"b to a", ns3, l1, "", syscall.ENETUNREACH},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dial(tt.from, tt.to)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("dial %s: got %q, %v; want %v", tt.to, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("dial %s: got %q, %v; want %q", tt.to, got, err, tt.want)
			}
		})
	}

	entries := m.HostEntries("car", "c1")
	slices.SortFunc(entries, func(x, y HostEntry) int { return strings.Compare(x.Name, y.Name) })
	want := []HostEntry{{"c1", a1[0].Address.Addr()}, {"c2", a2[0].Address.Addr()}, {"c4", a4[0].Address.Addr()}}
	if !slices.Equal(entries, want) {
		t.Errorf("HostEntries(c1) = %v, want %v", entries, want)
	}
}

func TestIPAMPersistence(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	host := hostNS(t)
	dir := t.TempDir()
	m1 := newManager(t, dir, host)
	n1 := ensure(t, m1, "s", "net", "")
	ns := testNS(t, "c1")
	first := attach(t, m1, "s", "c1", ns, "net")
	attach(t, m1, "s", "c2", testNS(t, "c2"), "net")
	if _, err := m1.Reserve(t.Context(), "s", "net", []string{"later"}); err != nil {
		t.Fatal(err)
	}
	before := m1.Addresses("s", "net")
	if len(before) != 3 {
		t.Fatalf("Addresses = %v, want 3 containers", before)
	}
	m1.Close()

	// A new Manager on the same state dir (a daemon restart).
	m2 := newManager(t, dir, host)
	if got := m2.Addresses("s", "net"); !mapsEqual(got, before) {
		t.Errorf("after restart Addresses = %v, want %v", got, before)
	}
	n2 := ensure(t, m2, "s", "net", "")
	if *n2 != *n1 {
		t.Errorf("after restart network = %+v, want %+v", n2, n1)
	}
	// The container restarts with a fresh namespace and keeps its address.
	if err := DeleteNetNS(ns); err != nil {
		t.Fatal(err)
	}
	if err := NewNetNS(ns); err != nil {
		t.Fatal(err)
	}
	again := attach(t, m2, "s", "c1", ns, "net")
	if again[0].Address != first[0].Address {
		t.Errorf("after restart c1 has %s, want %s", again[0].Address, first[0].Address)
	}
	later := attach(t, m2, "s", "later", testNS(t, "later"), "net")
	if later[0].Address.Addr() != before["later"] {
		t.Errorf("reserved container attached with %s, want %s", later[0].Address, before["later"])
	}

	// Detach frees; the same container comes back to the same address.
	if err := m2.Detach(t.Context(), "s", "c1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := m2.Addresses("s", "net")["c1"]; ok {
		t.Error("Detach left c1's address")
	}
	m3 := newManager(t, dir, host)
	if _, ok := m3.Addresses("s", "net")["c1"]; ok {
		t.Error("Detach did not persist the freed address")
	}
}

func mapsEqual(a, b map[string]netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestSubnetAllocation(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	host := hostNS(t)
	// Something else on the host already uses 10.89.0.0/24 and 10.89.2.0/23.
	h, err := netlink.NewHandleAt(host)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	other := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "uplink0"}}
	if err := h.LinkAdd(other); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.89.0.5/24", "10.89.2.1/23"} {
		addr, _ := netlink.ParseAddr(a)
		if err := h.AddrAdd(other, addr); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.LinkSetUp(other); err != nil {
		t.Fatal(err)
	}

	m := newManager(t, t.TempDir(), host)
	if n := ensure(t, m, "s", "one", ""); n.Subnet.String() != "10.89.1.0/24" {
		t.Errorf("first allocation = %s, want 10.89.1.0/24", n.Subnet)
	}
	if n := ensure(t, m, "s", "two", ""); n.Subnet.String() != "10.89.4.0/24" {
		t.Errorf("second allocation = %s, want 10.89.4.0/24", n.Subnet)
	}
	if n := ensure(t, m, "s", "one", ""); n.Subnet.String() != "10.89.1.0/24" {
		t.Errorf("EnsureNetwork again moved the subnet to %s", n.Subnet)
	}

	tests := []struct {
		name    string
		spec    NetworkSpec
		wantErr error
		wantMsg string
	}{
		{"host route", NetworkSpec{"s", "x", netip.MustParsePrefix("10.89.0.128/25")}, ErrSubnetOverlap, "uplink0"},
		{"other berth network", NetworkSpec{"t", "y", netip.MustParsePrefix("10.89.4.0/24")}, ErrSubnetInUse, `network "two" of stack "s"`},
		{"ipv6", NetworkSpec{"s", "z", netip.MustParsePrefix("fd00::/64")}, ErrInvalidSubnet, "IPv4"},
		{"too small", NetworkSpec{"s", "z", netip.MustParsePrefix("10.90.0.0/31")}, ErrInvalidSubnet, "/30"},
		{"empty stack", NetworkSpec{"", "z", netip.Prefix{}}, ErrInvalidName, "stack name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.EnsureNetwork(t.Context(), tt.spec)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("EnsureNetwork(%+v) = %v, want %v mentioning %q", tt.spec, err, tt.wantErr, tt.wantMsg)
			}
		})
	}

	// A tiny pool runs out.
	small := newManager(t, t.TempDir(), host, WithSubnetPool(netip.MustParsePrefix("10.77.0.0/23"), 24))
	ensure(t, small, "s", "a", "")
	ensure(t, small, "s", "b", "")
	if _, err := small.EnsureNetwork(t.Context(), NetworkSpec{Stack: "s", Name: "c"}); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("third network from a two-subnet pool: %v, want ErrPoolExhausted", err)
	}

	// The subnet of a network with attached containers cannot change.
	attach(t, m, "s", "c", testNS(t, "c"), "one")
	_, err = m.EnsureNetwork(t.Context(), NetworkSpec{"s", "one", netip.MustParsePrefix("10.50.0.0/24")})
	if !errors.Is(err, ErrSubnetChanged) {
		t.Errorf("subnet change with a container attached: %v, want ErrSubnetChanged", err)
	}
}

func TestDetachAndRemoveLeaveNoLinks(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	host := hostNS(t)
	m := newManager(t, t.TempDir(), host)
	n := ensure(t, m, "s", "net", "")
	ns1, ns2 := testNS(t, "c1"), testNS(t, "c2")
	attach(t, m, "s", "c1", ns1, "net")
	attach(t, m, "s", "c2", ns2, "net")
	want := []string{n.Bridge, "lo", VethName(m.Instance(), "s", "c1", "net"), VethName(m.Instance(), "s", "c2", "net")}
	slices.Sort(want)
	if got := linkNames(t, host); !slices.Equal(got, want) {
		t.Fatalf("host links = %v, want %v", got, want)
	}

	// Attaching again (a retry) replaces, not duplicates.
	attach(t, m, "s", "c1", ns1, "net")
	if got := linkNames(t, host); !slices.Equal(got, want) {
		t.Fatalf("host links after re-attach = %v, want %v", got, want)
	}

	for i := range 2 {
		if err := m.Detach(t.Context(), "s", "c1"); err != nil {
			t.Fatalf("Detach #%d: %v", i+1, err)
		}
	}
	want = []string{n.Bridge, "lo", VethName(m.Instance(), "s", "c2", "net")}
	slices.Sort(want)
	if got := linkNames(t, host); !slices.Equal(got, want) {
		t.Errorf("host links after Detach = %v, want %v", got, want)
	}
	if got := linkNamesAt(t, ns1); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("c1 links after Detach = %v, want only lo", got)
	}
	if _, ok := m.Addresses("s", "net")["c1"]; ok {
		t.Error("Detach did not free c1's address")
	}

	// c2 is still attached when the stack goes down.
	for i := range 2 {
		if err := m.RemoveNetwork(t.Context(), "s", "net"); err != nil {
			t.Fatalf("RemoveNetwork #%d: %v", i+1, err)
		}
	}
	if got := linkNames(t, host); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("host links after RemoveNetwork = %v, want only lo", got)
	}
	if got := linkNamesAt(t, ns2); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("c2 links after RemoveNetwork = %v, want only lo", got)
	}
	if m.Addresses("s", "net") != nil || len(m.Networks()) != 0 {
		t.Error("RemoveNetwork left the network's state")
	}
	if _, err := m.Attach(t.Context(), "s", "c2", ns2, []string{"net"}); !errors.Is(err, ErrUnknownNetwork) {
		t.Errorf("Attach to a removed network: %v, want ErrUnknownNetwork", err)
	}
}

func TestCleanup(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	host := hostNS(t)
	dir := t.TempDir()
	m := newManager(t, dir, host)
	n := ensure(t, m, "s", "net", "")
	gone := ensure(t, m, "old", "net", "")
	attach(t, m, "s", "running", testNS(t, "running"), "net")
	attach(t, m, "s", "dead", testNS(t, "dead"), "net")

	// After a crash: the state of stack "old" is lost but its bridge stays
	// and a veth of no known container is left, both marked as this
	// instance's. Links that only look like berth's must survive: without
	// a mark, with another instance's mark, or with a name not berth's.
	if err := os.Remove(statePath(dir, gone.Bridge)); err != nil {
		t.Fatal(err)
	}
	mine := LinkMark(m.Instance())
	stray := VethName(m.Instance(), "x", "y", "z")
	addLink(t, host, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: stray}, PeerName: "strayp"}, mine)
	addLink(t, host, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "bb-not-berth"}}, mine)
	addLink(t, host, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "bb-0123456789"}}, "")
	addLink(t, host, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "bb-abcdef0123"}}, LinkMark("other"))
	addLink(t, host, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "bv-abcdef0123"}, PeerName: "otherp"}, LinkMark("other"))

	m2 := newManager(t, dir, host)
	if err := m2.Cleanup(t.Context(), []ContainerRef{{"s", "running"}}); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	want := []string{"bb-0123456789", "bb-abcdef0123", "bb-not-berth", "bv-abcdef0123", n.Bridge, "lo", "otherp", VethName(m.Instance(), "s", "running", "net")}
	slices.Sort(want)
	if got := linkNames(t, host); !slices.Equal(got, want) {
		t.Errorf("host links after Cleanup = %v, want %v", got, want)
	}
	if got := m2.Addresses("s", "net"); len(got) != 1 || !got["running"].IsValid() {
		t.Errorf("Addresses after Cleanup = %v, want only running", got)
	}
}

// addLink makes l in the namespace ns, marked with alias unless it is empty,
// the way another berthd (or a crashed one) would have left it.
func addLink(t *testing.T, ns netns.NsHandle, l netlink.Link, alias string) {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(l); err != nil {
		t.Fatalf("add link %s: %v", l.Attrs().Name, err)
	}
	if alias == "" {
		return
	}
	if err := h.LinkSetAlias(l, alias); err != nil {
		t.Fatalf("set alias of %s: %v", l.Attrs().Name, err)
	}
}

// hostLink returns the link called name in ns.
func hostLink(t *testing.T, ns netns.NsHandle, name string) netlink.Link {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("find %s: %v", name, err)
	}
	return l
}

// TestTwoInstances runs two berthds' Managers (different state dirs, the
// same stack, network and container names) on one host namespace.
func TestTwoInstances(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	host := hostNS(t)
	a := newManager(t, t.TempDir(), host)
	b := newManager(t, t.TempDir(), host)
	if a.Instance() == b.Instance() {
		t.Fatalf("two state dirs share instance %q", a.Instance())
	}
	na := ensure(t, a, "demo", "backend", "")
	nb := ensure(t, b, "demo", "backend", "")
	if na.Bridge == nb.Bridge {
		t.Fatalf("both instances use bridge %s", na.Bridge)
	}
	if na.Subnet.Overlaps(nb.Subnet) {
		t.Fatalf("second instance's subnet %s overlaps the first's %s", nb.Subnet, na.Subnet)
	}
	for _, m := range []*Manager{a, b} {
		n := m.Networks()[0]
		if got := hostLink(t, host, n.Bridge).Attrs().Alias; got != LinkMark(m.Instance()) {
			t.Errorf("bridge %s has alias %q, want %q", n.Bridge, got, LinkMark(m.Instance()))
		}
	}

	aWeb, aDB := testNS(t, "a-web"), testNS(t, "a-db")
	aWebAtt := attach(t, a, "demo", "web", aWeb, "backend")
	aDBAtt := attach(t, a, "demo", "db", aDB, "backend")
	attach(t, b, "demo", "web", testNS(t, "b-web"), "backend")
	attach(t, b, "demo", "db", testNS(t, "b-db"), "backend")
	vethsA := []string{VethName(a.Instance(), "demo", "web", "backend"), VethName(a.Instance(), "demo", "db", "backend")}
	vethsB := []string{VethName(b.Instance(), "demo", "web", "backend"), VethName(b.Instance(), "demo", "db", "backend")}
	for m, veths := range map[*Manager][]string{a: vethsA, b: vethsB} {
		for _, v := range veths {
			if l := hostLink(t, host, v); l.Attrs().Alias != LinkMark(m.Instance()) {
				t.Errorf("veth %s has alias %q, want %q", v, l.Attrs().Alias, LinkMark(m.Instance()))
			}
		}
	}

	// Leftovers on the host: one of each instance (marked, state lost) and
	// an unmarked link of berth's shape, which belongs to neither.
	leftA, leftB := BridgeName(a.Instance(), "old", "net"), BridgeName(b.Instance(), "old", "net")
	addLink(t, host, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: leftA}}, LinkMark(a.Instance()))
	addLink(t, host, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: leftB}}, LinkMark(b.Instance()))
	addLink(t, host, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "bb-0123456789"}}, "")

	// The second berthd starts up and cleans up with no container to keep.
	if err := b.Cleanup(t.Context(), nil); err != nil {
		t.Fatalf("Cleanup of b: %v", err)
	}
	want := append([]string{"bb-0123456789", "lo", na.Bridge, nb.Bridge, leftA}, vethsA...)
	slices.Sort(want)
	if got := linkNames(t, host); !slices.Equal(got, want) {
		t.Errorf("host links after b's Cleanup = %v, want %v", got, want)
	}
	brA := hostLink(t, host, na.Bridge)
	for _, v := range vethsA {
		if l := hostLink(t, host, v); l.Attrs().MasterIndex != brA.Attrs().Index {
			t.Errorf("veth %s left bridge %s", v, na.Bridge)
		}
	}
	if len(b.Addresses("demo", "backend")) != 0 || len(a.Addresses("demo", "backend")) != 2 {
		t.Errorf("addresses after b's Cleanup: a %v, b %v", a.Addresses("demo", "backend"), b.Addresses("demo", "backend"))
	}
	// a's containers still talk to each other.
	l := listen(t, aDB, aDBAtt[0].Address.Addr())
	if got, err := dial(aWeb, l); err != nil || got != "pong "+aWebAtt[0].Address.Addr().String() {
		t.Errorf("a's web to db after b's Cleanup: %q, %v", got, err)
	}

	// Then the first one cleans up too, and b's bridge survives that.
	if err := a.Cleanup(t.Context(), nil); err != nil {
		t.Fatalf("Cleanup of a: %v", err)
	}
	want = []string{"bb-0123456789", "lo", na.Bridge, nb.Bridge}
	slices.Sort(want)
	if got := linkNames(t, host); !slices.Equal(got, want) {
		t.Errorf("host links after a's Cleanup = %v, want %v", got, want)
	}

	// Each instance refuses to delete the other's link even if the names
	// collide (as they would with a forced shared identity).
	c := newManager(t, t.TempDir(), host, WithInstance(a.Instance()+"x"))
	addLink(t, host, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName(c.Instance(), "s", "n")}}, LinkMark(a.Instance()))
	if err := c.RemoveNetwork(t.Context(), "s", "n"); !errors.Is(err, ErrLinkNotOwned) {
		t.Errorf("RemoveNetwork over another instance's bridge: %v, want ErrLinkNotOwned", err)
	}
	if _, err := c.EnsureNetwork(t.Context(), NetworkSpec{Stack: "s", Name: "n"}); !errors.Is(err, ErrLinkNotOwned) {
		t.Errorf("EnsureNetwork over another instance's bridge: %v, want ErrLinkNotOwned", err)
	}
}

// TestInstanceState checks that a Manager loads only its own instance's
// state and that WithInstance keeps the identity across restarts.
func TestInstanceState(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	host := hostNS(t)
	dir := t.TempDir()
	m := newManager(t, dir, host, WithInstance("test-1"))
	n := ensure(t, m, "s", "net", "10.60.0.0/24")
	if n.Bridge != BridgeName("test-1", "s", "net") {
		t.Errorf("bridge %s, want BridgeName(test-1, s, net)", n.Bridge)
	}
	m.Close()

	// Restart with the same identity: the network is known.
	if got := newManager(t, dir, host, WithInstance("test-1")).Networks(); len(got) != 1 || got[0] != *n {
		t.Errorf("after restart Networks = %v, want [%v]", got, *n)
	}
	// Another identity on the same dir ignores it.
	if got := newManager(t, dir, host, WithInstance("test-2")).Networks(); len(got) != 0 {
		t.Errorf("another instance loaded %v", got)
	}
	// State written before names held the instance is ignored, not fatal.
	old := &netState{Stack: "s", Name: "pre", Bridge: bridgePrefix + hashName("s", "pre"),
		Subnet: netip.MustParsePrefix("10.61.0.0/24"), Addresses: map[string]netip.Addr{}}
	if err := old.save(dir); err != nil {
		t.Fatal(err)
	}
	if got := newManager(t, dir, host, WithInstance("test-1")).Networks(); len(got) != 1 || got[0].Name != "net" {
		t.Errorf("with an old state file Networks = %v, want only net", got)
	}

	if _, err := NewManager(dir, nil, WithHostNS(host), WithInstance("bad id")); !errors.Is(err, ErrInvalidName) {
		t.Errorf("NewManager with a bad instance id: %v, want ErrInvalidName", err)
	}
}

func TestContextCanceled(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	m := newManager(t, t.TempDir(), hostNS(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := m.EnsureNetwork(ctx, NetworkSpec{Stack: "s", Name: "n"}); !errors.Is(err, context.Canceled) {
		t.Errorf("EnsureNetwork with a canceled ctx: %v", err)
	}
	if len(m.Networks()) != 0 {
		t.Error("EnsureNetwork with a canceled ctx made a network")
	}

	m.Close()
	m.Close()
	if _, err := m.EnsureNetwork(t.Context(), NetworkSpec{Stack: "s", Name: "n"}); !errors.Is(err, ErrClosed) {
		t.Errorf("EnsureNetwork after Close: %v, want ErrClosed", err)
	}
}
