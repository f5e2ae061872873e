package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/berth-io/berth/core/broker"
	"github.com/berth-io/berth/core/cannative"
	"github.com/berth-io/berth/core/network"
	"github.com/berth-io/berth/core/oci"
	"github.com/berth-io/berth/core/playbook"
	"github.com/berth-io/berth/core/stack"
	"github.com/berth-io/berth/devices/can"
)

// nativeWait bounds how long Prepare waits for a device's first
// fingerprint, which names its kernel interface (can.AttrInterface).
const nativeWait = 5 * time.Second

// nativeCAN serves the CAN grants that ask for `native = true` as kernel
// CAN interfaces in the container's network namespace (core/cannative),
// when the kernel, the board and the grant allow it; the broker serves
// every other grant. It holds the links of the containers it serves; a
// link closes when its container is removed, not when berthd stops, so a
// restarted berthd adopts it.
type nativeCAN struct {
	instance string
	log      *slog.Logger
	// unsupported is cannative.Supported's verdict at start; nil when the
	// kernel serves grants natively.
	unsupported error

	mu    sync.Mutex
	links map[string]map[string]*nativeLink // by container ID, then grant
	// ended sums the counters of the links that closed.
	ended broker.Tally
}

// nativeLink is one grant served natively, attached by this berthd or
// adopted from an earlier one.
type nativeLink struct {
	device    string // the board device, as `berth devices` names it
	container string // stack/name, as berth ps names it
	link      *cannative.Link
}

// newNativeCAN checks once whether the kernel can serve grants natively and
// logs the verdict. instance is berthd's instance identity (the network
// manager's), which marks the links it makes.
func newNativeCAN(log *slog.Logger, instance string) *nativeCAN {
	n := &nativeCAN{instance: instance, log: log, links: map[string]map[string]*nativeLink{}, ended: broker.Tally{}}
	n.unsupported = cannative.Supported()
	if n.unsupported != nil {
		log.Info("native CAN unavailable: grants with native = true are served through the broker", "reason", n.unsupported)
	} else {
		log.Info("native CAN available: grants with native = true become kernel CAN interfaces in their containers")
	}
	return n
}

// cleanup deletes the native links an earlier berthd of this instance left
// and no adopted container holds. Call it once the stacks are restored.
func (n *nativeCAN) cleanup(ctx context.Context) error {
	if n.unsupported != nil {
		return nil // the kernel has no vxcan: there is nothing to clean
	}
	n.mu.Lock()
	var keep []string
	for _, gs := range n.links {
		for _, l := range gs {
			keep = append(keep, l.link.HostName())
		}
	}
	n.mu.Unlock()
	gone, err := cannative.Cleanup(ctx, n.instance, keep...)
	if len(gone) > 0 {
		n.log.Info("deleted native CAN links an earlier berthd left", "links", gone)
	}
	return err
}

// logFallback logs that the grant is served through the broker and why.
func logFallback(log *slog.Logger, s *stack.Spec, grant, reason string) {
	log.Warn("native CAN grant served through the broker", "container", psName(s), "grant", grant, "reason", reason)
}

// psName names the container as berth ps does: stack/name.
func psName(s *stack.Spec) string { return s.Stack.Name + "/" + s.Container.Name }

// nativeBuses returns, by grant name, the host CAN interface of each of the
// container's `native = true` grants that may be served natively, and logs
// for each other one why the broker serves it instead.
func (m *deviceManager) nativeBuses(ctx context.Context, s *stack.Spec) map[string]string {
	n := m.native
	buses := map[string]string{}
	for _, g := range s.Container.Grants {
		if g.CAN == nil || !g.Native {
			continue
		}
		reason := ""
		switch {
		case n == nil || m.board == nil:
			reason = "berthd runs without a board file"
		case n.unsupported != nil:
			reason = n.unsupported.Error()
		case s.Container.NetworkMode == playbook.NetworkHost:
			reason = `network_mode = "host": the interface would land in the host's network namespace; use network_mode "none" or "bridge"`
		}
		if reason == "" {
			// A send rate (or a grant too wide for can-gw) is the broker's.
			if _, err := cannative.Compile(*g.CAN, false); err != nil {
				reason = err.Error()
			}
		}
		var bus string
		if reason == "" {
			bus, reason = m.kernelBus(ctx, g.CAN.Device)
		}
		if reason != "" {
			logFallback(m.log, s, g.Name, reason)
			continue
		}
		buses[g.Name] = bus
	}
	return buses
}

// kernelBus returns the host kernel interface of the board device, or why
// it has none: a device is a kernel interface when its plugin's fingerprint
// names one (can.AttrInterface), as the SocketCAN plugin's do.
func (m *deviceManager) kernelBus(ctx context.Context, device string) (bus, reason string) {
	wctx, cancel := context.WithTimeout(ctx, nativeWait)
	defer cancel()
	if err := m.host.Wait(wctx, device); err != nil {
		return "", fmt.Sprintf("bus %s is not healthy: %v", device, err)
	}
	for _, st := range m.host.Devices() {
		if st.Name == device {
			if ifname := st.Attributes[can.AttrInterface]; ifname != "" {
				return ifname, ""
			}
			return "", fmt.Sprintf("bus %s is no host kernel interface: its plugin %q names none (a SocketCAN bus is one)", device, st.Plugin)
		}
	}
	return "", fmt.Sprintf("board %s has no device %q", m.board.Name, device)
}

// served returns the names of the container's grants served natively,
// which its device socket leaves out.
func (n *nativeCAN) served(id string) map[string]bool {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]bool{}
	for name := range n.links[id] {
		out[name] = true
	}
	return out
}

// attach serves each grant in buses natively in the namespace at netns,
// replacing a link the container had; a grant cannative refuses is logged
// and left to the broker.
func (n *nativeCAN) attach(ctx context.Context, s *stack.Spec, netns string, buses map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(buses)) {
		g := grantOf(s.Container, name)
		n.drop(s.ID(), name)
		l, err := cannative.Attach(ctx, n.attachment(s, netns, buses[name], g))
		if err != nil {
			logFallback(n.log, s, name, err.Error())
			continue
		}
		n.add(s.ID(), name, &nativeLink{device: g.CAN.Device, container: psName(s), link: l})
		n.log.Info("native CAN grant attached", "container", psName(s), "grant", name, "bus", buses[name], "interface", l.IfName(), "host_link", l.HostName(), "rules", len(l.Rules()))
	}
}

// attachment is the grant g of container s on bus, in the namespace at
// netns, as this berthd attaches it.
func (n *nativeCAN) attachment(s *stack.Spec, netns, bus string, g *playbook.Grant) cannative.Attachment {
	return cannative.Attachment{Bus: bus, Netns: netns, Grant: *g.CAN, Instance: n.instance, Container: psName(s)}
}

// adopt takes over the native links of a container an earlier berthd
// started (cannative.Adopt): the container's sockets stay bound to them. A
// missing link is attached again when the namespace is there; a grant
// that can be neither adopted nor attached is left to the broker.
func (n *nativeCAN) adopt(ctx context.Context, s *stack.Spec, netns string, buses map[string]string) {
	missing := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(buses)) {
		g := grantOf(s.Container, name)
		l, err := cannative.Adopt(n.attachment(s, netns, buses[name], g))
		switch {
		case err == nil:
			n.add(s.ID(), name, &nativeLink{device: g.CAN.Device, container: psName(s), link: l})
			n.log.Info("native CAN grant adopted", "container", psName(s), "grant", name, "bus", buses[name], "host_link", l.HostName())
		case errors.Is(err, cannative.ErrNoLink):
			missing[name] = buses[name]
		default:
			logFallback(n.log, s, name, err.Error())
		}
	}
	if len(missing) == 0 {
		return
	}
	if !isMountPoint(netns) {
		for name := range missing {
			logFallback(n.log, s, name, "the adopted container has no network namespace berth made at "+netns)
		}
		return
	}
	n.attach(ctx, s, netns, missing)
}

func (n *nativeCAN) add(id, grant string, l *nativeLink) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.links[id] == nil {
		n.links[id] = map[string]*nativeLink{}
	}
	n.links[id][grant] = l
}

// drop closes and forgets one grant's link, if the container has one.
func (n *nativeCAN) drop(id, grant string) error {
	n.mu.Lock()
	l := n.links[id][grant]
	delete(n.links[id], grant)
	n.mu.Unlock()
	if l == nil {
		return nil
	}
	return n.close(grant, l)
}

// detach closes every native link of the container. Safe to call for a
// container that has none.
func (n *nativeCAN) detach(id string) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	gs := n.links[id]
	delete(n.links, id)
	n.mu.Unlock()
	var errs []error
	for grant, l := range gs {
		errs = append(errs, n.close(grant, l))
	}
	return errors.Join(errs...)
}

// close deletes a link with its container's interface and its rules,
// keeping its counters for sessions.
func (n *nativeCAN) close(grant string, l *nativeLink) error {
	st := l.stats(grant)
	st.Open = 0
	n.mu.Lock()
	n.ended.Add(l.device, st)
	n.mu.Unlock()
	return l.link.Close()
}

// stats returns the link's counters as a session of grant: the grant
// marked "(native)", with can-gw's counters.
func (l *nativeLink) stats(grant string) broker.SessionStats {
	s := broker.SessionStats{Container: l.container, Grant: grant + " (native)", Open: 1}
	if st, err := l.link.Stats(); err == nil {
		s.Received, s.Dropped = st.Received, st.ReceiveDropped
		s.Delivered = st.Received - min(st.Received, st.ReceiveDropped)
		s.Sent, s.Refused = st.Sent, st.Refused
	}
	return s
}

// sessions returns, by board device, one row per container grant served
// natively since berthd started, summed over its links, open and closed,
// as broker.Totals does for the broker's.
func (n *nativeCAN) sessions() map[string][]broker.SessionStats {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	sum := broker.Tally{}
	maps.Copy(sum, n.ended)
	open := map[*nativeLink]string{} // link: its grant
	for _, gs := range n.links {
		for grant, l := range gs {
			open[l] = grant
		}
	}
	n.mu.Unlock()
	for l, grant := range open {
		sum.Add(l.device, l.stats(grant))
	}
	return sum.Rows()
}

// grantOf returns the container's grant named name.
func grantOf(c *playbook.Container, name string) *playbook.Grant {
	for i := range c.Grants {
		if c.Grants[i].Name == name {
			return &c.Grants[i]
		}
	}
	return nil
}

// prepareNative gives the container's native grants their interfaces
// before it starts: in its bridge namespace, or in a namespace of its own
// with loopback only for network_mode "none", handed to the spec. It never
// fails the container: a grant it cannot serve natively is the broker's.
func (d *ociDriver) prepareNative(ctx context.Context, s *stack.Spec, opts *oci.SpecOptions) {
	buses := d.devices.nativeBuses(ctx, s)
	if len(buses) == 0 {
		return
	}
	ns := d.netnsPath(s)
	if s.Container.NetworkMode != playbook.NetworkBridge {
		if err := ensureNetNS(ns); err != nil {
			for name := range buses {
				logFallback(d.log, s, name, err.Error())
			}
			return
		}
		opts.NetNSPath = ns
	}
	d.devices.native.attach(ctx, s, ns, buses)
}

// ensureNetNS makes sure a namespace berth made is bound at ns: it keeps
// one that is, replaces a plain file a berthd killed while making one left
// (it would fail every attach), and else makes one.
func ensureNetNS(ns string) error {
	if fileExists(ns) && !isMountPoint(ns) {
		if err := network.DeleteNetNS(ns); err != nil {
			return err
		}
	}
	if fileExists(ns) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(ns), 0o700); err != nil {
		return fmt.Errorf("create netns: %w", err)
	}
	return network.NewNetNS(ns)
}

// adoptNative takes over the native links of an adopted container.
func (d *ociDriver) adoptNative(ctx context.Context, s *stack.Spec) {
	if buses := d.devices.nativeBuses(ctx, s); len(buses) > 0 {
		d.devices.native.adopt(ctx, s, d.netnsPath(s), buses)
	}
}
