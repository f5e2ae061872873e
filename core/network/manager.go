package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Manager makes and removes berth's bridges and veths in one host network
// namespace and keeps their addresses in a state directory. Its methods are
// safe for concurrent use. Only one Manager may use a given state directory
// at a time. Managers with different instance identities (by default, with
// different state directories) may share a host namespace: their link names
// differ and each touches only links marked as its own.
type Manager struct {
	dir      string
	instance string // identity in link names and marks; see InstanceID
	mark     string // alias of every host link this Manager makes
	log      *slog.Logger
	h        *netlink.Handle
	pool     netip.Prefix
	poolBits int

	mu   sync.Mutex
	nets map[netKey]*netState
}

// Option configures a Manager.
type Option func(*options) error

type options struct {
	hostNS   netns.NsHandle
	instance string
	pool     netip.Prefix
	poolBits int
}

// WithInstance sets the Manager's instance identity instead of deriving it
// from the state directory with [InstanceID]: 1 to 64 characters of
// [A-Za-z0-9._-]. Two Managers sharing a host namespace must have different
// identities, and a daemon must keep its identity across restarts to find
// its networks again.
func WithInstance(id string) Option {
	return func(o *options) error {
		if err := CheckInstance(id); err != nil {
			return err
		}
		o.instance = id
		return nil
	}
}

// WithHostNS makes the Manager put bridges and host-side veths in the
// network namespace ns instead of the daemon's own. The Manager does not own
// ns: the caller keeps it open while the Manager is used and closes it.
func WithHostNS(ns netns.NsHandle) Option {
	return func(o *options) error {
		if !ns.IsOpen() {
			return errors.New("host netns handle is not open")
		}
		o.hostNS = ns
		return nil
	}
}

// WithSubnetPool sets the pool that subnets are allocated from for networks
// whose playbook names none: pool split into subnets of prefix length bits.
// The default is 10.89.0.0/16 split into /24s.
func WithSubnetPool(pool netip.Prefix, bits int) Option {
	return func(o *options) error {
		if err := checkSubnet(pool); err != nil {
			return fmt.Errorf("subnet pool: %w", err)
		}
		if bits < pool.Bits() || bits > maxBits {
			return fmt.Errorf("subnet pool %s: size /%d must be between /%d and /%d: %w", pool, bits, pool.Bits(), maxBits, ErrInvalidSubnet)
		}
		o.pool, o.poolBits = pool.Masked(), bits
		return nil
	}
}

// NewManager returns a Manager keeping its state in stateDir (created if
// missing) and loads the networks saved there by the same instance (see
// [InstanceID] and [WithInstance]). It opens a netlink socket in the host
// namespace; Close releases it.
func NewManager(stateDir string, log *slog.Logger, opts ...Option) (*Manager, error) {
	o := options{hostNS: netns.None(), pool: defaultPool, poolBits: defaultPoolBits}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("network manager: %w", err)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.instance == "" {
		id, err := InstanceID(stateDir)
		if err != nil {
			return nil, fmt.Errorf("network manager: %w", err)
		}
		o.instance = id
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("network manager: %w", err)
	}
	nets, err := loadStates(stateDir, o.instance, log)
	if err != nil {
		return nil, fmt.Errorf("network manager: %w", err)
	}
	h, err := netlink.NewHandleAt(o.hostNS, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("network manager: netlink: %w", err)
	}
	return &Manager{
		dir: stateDir, instance: o.instance, mark: LinkMark(o.instance),
		log: log.With("instance", o.instance), h: h, pool: o.pool, poolBits: o.poolBits, nets: nets,
	}, nil
}

// Instance returns the Manager's instance identity, the one its link names
// ([BridgeName], [VethName]) and link marks are made with.
func (m *Manager) Instance() string { return m.instance }

// Close releases the Manager's netlink socket. Links and state stay. Safe
// to call twice; methods that change links fail with ErrClosed afterwards.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h != nil {
		m.h.Close()
		m.h = nil
	}
	return nil
}

// lock takes m.mu and fails if the Manager is closed; on success the caller
// unlocks.
func (m *Manager) lock() error {
	m.mu.Lock()
	if m.h == nil {
		m.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// NetworkSpec asks for one stack network. A zero Subnet lets berth allocate
// one from its pool (and keep it across restarts).
type NetworkSpec struct {
	Stack, Name string
	Subnet      netip.Prefix
}

// Network is a stack network as it exists on the host.
type Network struct {
	Stack, Name string
	Bridge      string // host bridge interface name
	Subnet      netip.Prefix
	Gateway     netip.Addr // the bridge's address, first host of Subnet
}

// EnsureNetwork makes sure the network of spec exists: its subnet is chosen
// and saved, and its bridge is up with the gateway address. Safe to call
// again, e.g. after a reboot: a saved network keeps its subnet (and the
// containers their addresses) unless spec names another one. Changing the
// subnet of a network with containers attached fails with ErrSubnetChanged.
func (m *Manager) EnsureNetwork(ctx context.Context, spec NetworkSpec) (*Network, error) {
	if err := validName("stack", spec.Stack); err != nil {
		return nil, fmt.Errorf("ensure network: %w", err)
	}
	if err := validName("network", spec.Name); err != nil {
		return nil, fmt.Errorf("ensure network: %w", err)
	}
	if spec.Subnet.IsValid() {
		if err := checkSubnet(spec.Subnet); err != nil {
			return nil, fmt.Errorf("ensure network %q of stack %q: %w", spec.Name, spec.Stack, err)
		}
		spec.Subnet = spec.Subnet.Masked()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()

	key := netKey{spec.Stack, spec.Name}
	st, ok := m.nets[key]
	bridge := BridgeName(m.instance, spec.Stack, spec.Name)
	switch {
	case ok && (!spec.Subnet.IsValid() || spec.Subnet == st.Subnet):
		// Saved network; keep its subnet.
	case ok:
		if len(st.Addresses) > 0 {
			return nil, fmt.Errorf("ensure network %q of stack %q: subnet changed from %s to %s while %d containers hold addresses: stop the stack's containers first: %w",
				spec.Name, spec.Stack, st.Subnet, spec.Subnet, len(st.Addresses), ErrSubnetChanged)
		}
		if err := m.checkFree(spec, bridge); err != nil {
			return nil, err
		}
		if err := m.deleteLink(bridge); err != nil {
			return nil, fmt.Errorf("ensure network %q of stack %q: %w", spec.Name, spec.Stack, err)
		}
		next := *st
		next.Subnet = spec.Subnet
		if err := next.save(m.dir); err != nil {
			return nil, err
		}
		*st = next
	default:
		subnet := spec.Subnet
		if subnet.IsValid() {
			if err := m.checkFree(spec, bridge); err != nil {
				return nil, err
			}
		} else {
			var err error
			if subnet, err = m.allocateSubnet(spec); err != nil {
				return nil, err
			}
		}
		st = &netState{Instance: m.instance, Stack: spec.Stack, Name: spec.Name, Bridge: bridge, Subnet: subnet, Addresses: map[string]netip.Addr{}}
		if err := st.save(m.dir); err != nil {
			return nil, err
		}
		m.nets[key] = st
		m.log.Info("network created", "stack", spec.Stack, "network", spec.Name, "bridge", bridge, "subnet", subnet)
	}
	if _, err := m.ensureBridge(st); err != nil {
		return nil, fmt.Errorf("ensure network %q of stack %q: %w", spec.Name, spec.Stack, err)
	}
	return st.network(), nil
}

// Networks returns every network the Manager knows, sorted by stack and name.
func (m *Manager) Networks() []Network {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Network, 0, len(m.nets))
	for _, st := range m.nets {
		out = append(out, *st.network())
	}
	slices.SortFunc(out, func(a, b Network) int {
		if c := strings.Compare(a.Stack, b.Stack); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// Addresses returns the address of every container holding one on network
// of stack (nil if the network is unknown). The map is the caller's.
func (m *Manager) Addresses(stack, network string) map[string]netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.nets[netKey{stack, network}]
	if !ok {
		return nil
	}
	return maps.Clone(st.Addresses)
}

// HostEntries returns the /etc/hosts entries for container of stack: every
// container (itself included) holding an address on a network where
// container holds one. Pass them to [HostsFile].
func (m *Manager) HostEntries(stack, container string) []HostEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []HostEntry
	for k, st := range m.nets {
		if k.stack != stack {
			continue
		}
		if _, ok := st.Addresses[container]; !ok {
			continue
		}
		for name, a := range st.Addresses {
			out = append(out, HostEntry{Name: name, Addr: a})
		}
	}
	return out
}

// Reserve gives each of containers an address on network of stack without
// attaching it, so that /etc/hosts of the stack's first containers can name
// those started later. Attach uses a reserved address; Detach frees it.
// Containers already holding an address keep it.
func (m *Manager) Reserve(ctx context.Context, stack, network string, containers []string) (map[string]netip.Addr, error) {
	for _, c := range containers {
		if err := validName("container", c); err != nil {
			return nil, fmt.Errorf("reserve addresses: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	st, ok := m.nets[netKey{stack, network}]
	if !ok {
		return nil, fmt.Errorf("reserve addresses: network %q of stack %q: call EnsureNetwork first: %w", network, stack, ErrUnknownNetwork)
	}
	next := st.clone()
	out := make(map[string]netip.Addr, len(containers))
	for _, c := range containers {
		a, _, err := next.allocate(c)
		if err != nil {
			return nil, fmt.Errorf("reserve addresses: %w", err)
		}
		out[c] = a
	}
	if !maps.Equal(next.Addresses, st.Addresses) {
		if err := next.save(m.dir); err != nil {
			return nil, err
		}
		*st = *next
	}
	return out, nil
}

func (s *netState) clone() *netState {
	c := *s
	c.Addresses = maps.Clone(s.Addresses)
	return &c
}

// RemoveNetwork deletes network of stack: the veths of containers still on
// it, its bridge and its saved state. Removing an unknown network deletes
// its bridge if one is left and succeeds.
func (m *Manager) RemoveNetwork(ctx context.Context, stack, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	bridge := BridgeName(m.instance, stack, name)
	var errs []error
	if st, ok := m.nets[netKey{stack, name}]; ok {
		for c := range st.Addresses {
			errs = append(errs, m.deleteLink(VethName(m.instance, stack, c, name)))
		}
	}
	errs = append(errs, m.deleteLink(bridge))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove network %q of stack %q: %w", name, stack, err)
	}
	if err := removeState(m.dir, bridge); err != nil {
		return fmt.Errorf("remove network %q of stack %q: %w", name, stack, err)
	}
	if _, ok := m.nets[netKey{stack, name}]; ok {
		delete(m.nets, netKey{stack, name})
		m.log.Info("network removed", "stack", stack, "network", name, "bridge", bridge)
	}
	return nil
}

// checkFree fails if spec.Subnet overlaps another berth network or a route
// or address in the host namespace (other than on the network's own bridge).
func (m *Manager) checkFree(spec NetworkSpec, bridge string) error {
	for k, st := range m.nets {
		if k == (netKey{spec.Stack, spec.Name}) {
			continue
		}
		if st.Subnet.Overlaps(spec.Subnet) {
			return fmt.Errorf("network %q of stack %q: subnet %s overlaps %s of network %q of stack %q: pick another subnet in the playbook: %w",
				spec.Name, spec.Stack, spec.Subnet, st.Subnet, st.Name, st.Stack, ErrSubnetInUse)
		}
	}
	used, err := m.hostPrefixes(bridge)
	if err != nil {
		return fmt.Errorf("network %q of stack %q: %w", spec.Name, spec.Stack, err)
	}
	for _, u := range used {
		if u.prefix.Overlaps(spec.Subnet) {
			return fmt.Errorf("network %q of stack %q: subnet %s overlaps %s on the host: pick another subnet in the playbook's network %q block, or leave subnet out to let berth choose: %w",
				spec.Name, spec.Stack, spec.Subnet, u, spec.Name, ErrSubnetOverlap)
		}
	}
	return nil
}

// allocateSubnet returns the first subnet of the pool that overlaps neither
// another berth network nor a route or address on the host.
func (m *Manager) allocateSubnet(spec NetworkSpec) (netip.Prefix, error) {
	used, err := m.hostPrefixes("")
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("network %q of stack %q: %w", spec.Name, spec.Stack, err)
	}
	var found netip.Prefix
	poolSubnets(m.pool, m.poolBits, func(p netip.Prefix) bool {
		for _, st := range m.nets {
			if st.Subnet.Overlaps(p) {
				return true
			}
		}
		for _, u := range used {
			if u.prefix.Overlaps(p) {
				return true
			}
		}
		found = p
		return false
	})
	if !found.IsValid() {
		return netip.Prefix{}, fmt.Errorf("network %q of stack %q: every /%d of %s is used by berth networks or host routes: give the network a subnet in the playbook: %w",
			spec.Name, spec.Stack, m.poolBits, m.pool, ErrPoolExhausted)
	}
	return found, nil
}

// hostPrefix is a prefix in use in the host namespace and where it is.
type hostPrefix struct {
	prefix netip.Prefix
	what   string // "route 10.0.0.0/8 dev eth0"
}

func (u hostPrefix) String() string { return u.what }

// hostPrefixes lists the IPv4 routes (main table, default route excluded)
// and addresses of the host namespace, except those on the link named skip.
func (m *Manager) hostPrefixes(skip string) ([]hostPrefix, error) {
	links, err := retryDump(m.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	routes, err := retryDump(func() ([]netlink.Route, error) { return m.h.RouteList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return m.h.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []hostPrefix
	for _, r := range routes {
		p, ok := ipNetPrefix(r.Dst)
		if !ok || p.Bits() == 0 || (skip != "" && names[r.LinkIndex] == skip) {
			continue
		}
		out = append(out, hostPrefix{p.Masked(), fmt.Sprintf("route %s dev %s", p.Masked(), names[r.LinkIndex])})
	}
	for _, a := range addrs {
		p, ok := ipNetPrefix(a.IPNet)
		if !ok || (skip != "" && names[a.LinkIndex] == skip) {
			continue
		}
		out = append(out, hostPrefix{p.Masked(), fmt.Sprintf("address %s on %s", p, names[a.LinkIndex])})
	}
	return out, nil
}

func ipNetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// ensureBridge makes st's bridge exist, carry this instance's mark, hold
// the gateway address and be up.
func (m *Manager) ensureBridge(st *netState) (netlink.Link, error) {
	br, err := m.h.LinkByName(st.Bridge)
	switch {
	case isNotFound(err):
		attrs := netlink.NewLinkAttrs()
		attrs.Name = st.Bridge
		attrs.HardwareAddr = bridgeMAC(st.Bridge)
		if err := m.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return nil, fmt.Errorf("create bridge %s: %w", st.Bridge, err)
		}
		if br, err = m.h.LinkByName(st.Bridge); err != nil {
			return nil, fmt.Errorf("find bridge %s: %w", st.Bridge, err)
		}
		if err := m.markLink(br); err != nil {
			return nil, err
		}
		m.log.Debug("bridge created", "bridge", st.Bridge, "stack", st.Stack, "network", st.Name)
	case err != nil:
		return nil, fmt.Errorf("find bridge %s: %w", st.Bridge, err)
	case br.Type() != "bridge":
		return nil, fmt.Errorf("link %s exists but is a %s, not a bridge: delete it", st.Bridge, br.Type())
	case br.Attrs().Alias == m.mark:
	case br.Attrs().Alias == "":
		// Left unmarked by a crash between create and mark (the name holds
		// this instance's identity, so the bridge is ours): mark it now.
		if err := m.markLink(br); err != nil {
			return nil, err
		}
		m.log.Info("unmarked bridge adopted", "bridge", st.Bridge, "stack", st.Stack, "network", st.Name)
	default:
		return nil, fmt.Errorf("bridge %s is marked %q, not %q: %w", st.Bridge, br.Attrs().Alias, m.mark, ErrLinkNotOwned)
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{
		IP:   gateway(st.Subnet).AsSlice(),
		Mask: net.CIDRMask(st.Subnet.Bits(), 32),
	}}
	if err := m.h.AddrReplace(br, gw); err != nil {
		return nil, fmt.Errorf("set address %s on bridge %s: %w", gw.IPNet, st.Bridge, err)
	}
	if err := m.h.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("set bridge %s up: %w", st.Bridge, err)
	}
	return br, nil
}

// markLink sets the alias of l, a link this Manager has just made, to its
// mark. The kernel ignores IFLA_IFALIAS when a link is created, so this is
// a second request; if it fails the link is deleted again.
func (m *Manager) markLink(l netlink.Link) error {
	if err := m.h.LinkSetAlias(l, m.mark); err != nil {
		if derr := m.h.LinkDel(l); derr != nil && !isNotFound(derr) {
			m.log.Warn("unmarked link left", "link", l.Attrs().Name, "err", derr)
		}
		return fmt.Errorf("mark link %s: %w", l.Attrs().Name, err)
	}
	return nil
}

// deleteLink deletes the link called name in the host namespace, if any.
// name is one of this instance's link names, so a link carrying its mark or
// none (one a crash left between create and mark) is deleted; a link marked
// otherwise is not, and the error wraps ErrLinkNotOwned.
func (m *Manager) deleteLink(name string) error {
	l, err := m.h.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if a := l.Attrs().Alias; a != m.mark && a != "" {
		return fmt.Errorf("delete link %s: marked %q, not %q: %w", name, a, m.mark, ErrLinkNotOwned)
	}
	if err := m.h.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	m.log.Debug("link deleted", "link", name)
	return nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, syscall.ENODEV)
}

// retryDump runs a netlink dump again when the kernel reports it was
// interrupted by a concurrent change, so results are consistent.
func retryDump[T any](f func() ([]T, error)) ([]T, error) {
	var (
		out []T
		err error
	)
	for range 5 {
		out, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}
