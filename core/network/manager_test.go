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
	if a.Gateway != netip.MustParseAddr("10.89.7.1") || a.Bridge != BridgeName("car", "a") {
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
	want := []string{n.Bridge, "lo", VethName("s", "c1", "net"), VethName("s", "c2", "net")}
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
	want = []string{n.Bridge, "lo", VethName("s", "c2", "net")}
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

	// After a crash: the state of stack "old" is lost but its bridge stays,
	// a veth of no known container is left, and a link that only looks like
	// berth's must survive.
	if err := os.Remove(statePath(dir, gone.Bridge)); err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(host)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	stray := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: VethName("x", "y", "z")}, PeerName: "strayp"}
	foreign := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "bb-not-berth"}}
	for _, l := range []netlink.Link{stray, foreign} {
		if err := h.LinkAdd(l); err != nil {
			t.Fatal(err)
		}
	}

	m2 := newManager(t, dir, host)
	if err := m2.Cleanup(t.Context(), []ContainerRef{{"s", "running"}}); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	want := []string{"bb-not-berth", n.Bridge, "lo", VethName("s", "running", "net")}
	slices.Sort(want)
	if got := linkNames(t, host); !slices.Equal(got, want) {
		t.Errorf("host links after Cleanup = %v, want %v", got, want)
	}
	if got := m2.Addresses("s", "net"); len(got) != 1 || !got["running"].IsValid() {
		t.Errorf("Addresses after Cleanup = %v, want only running", got)
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
