package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Attachment is one network interface of a container.
type Attachment struct {
	Network   string       // stack network name
	Interface string       // name inside the container: eth0, eth1, ...
	Address   netip.Prefix // the container's address and the subnet's length
}

// Attach connects container of stack, whose network namespace is bound at
// netnsPath, to networks in order: the i-th network becomes interface eth<i>
// in the namespace, with the container's address on that network (kept from
// an earlier Attach or Reserve, else allocated and saved) and only the
// subnet route. Every network must have been made with EnsureNetwork. With
// no networks, Attach only brings up lo (network_mode "none").
//
// Attach replaces links left by an earlier Attach of the same container, so
// it is safe to call again, e.g. with a new namespace after a restart. On
// error, the links it made are deleted and the addresses it allocated freed.
func (m *Manager) Attach(ctx context.Context, stack, container, netnsPath string, networks []string) (_ []Attachment, err error) {
	if err := validName("container", container); err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	seen := make(map[string]bool, len(networks))
	for _, n := range networks {
		if seen[n] {
			return nil, fmt.Errorf("attach container %q: network %q listed twice: %w", container, n, ErrInvalidName)
		}
		seen[n] = true
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()

	states := make([]*netState, len(networks))
	for i, n := range networks {
		st, ok := m.nets[netKey{stack, n}]
		if !ok {
			return nil, fmt.Errorf("attach container %q: network %q of stack %q: call EnsureNetwork first: %w", container, n, stack, ErrUnknownNetwork)
		}
		states[i] = st
	}

	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("attach container %q: open netns %s: %w", container, netnsPath, err)
	}
	defer ns.Close()
	ch, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("attach container %q: netlink in %s: %w", container, netnsPath, err)
	}
	defer ch.Close()

	var made []string
	var allocated []*netState
	defer func() {
		if err == nil {
			return
		}
		for _, l := range made {
			if derr := m.deleteLink(l); derr != nil {
				m.log.Warn("attach rollback: leaving link", "link", l, "err", derr)
			}
		}
		for _, st := range allocated {
			next := st.clone()
			delete(next.Addresses, container)
			if serr := next.save(m.dir); serr != nil {
				m.log.Warn("attach rollback: address stays reserved", "network", st.Name, "container", container, "err", serr)
				continue
			}
			*st = *next
		}
	}()

	if err := upLoopback(ch); err != nil {
		return nil, fmt.Errorf("attach container %q: %w", container, err)
	}
	out := make([]Attachment, 0, len(networks))
	for i, st := range states {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		next := st.clone()
		addr, changed, err := next.allocate(container)
		if err != nil {
			return nil, fmt.Errorf("attach container %q: %w", container, err)
		}
		if changed {
			if err := next.save(m.dir); err != nil {
				return nil, fmt.Errorf("attach container %q: %w", container, err)
			}
			*st = *next
			allocated = append(allocated, st)
		}
		host := VethName(m.instance, stack, container, st.Name)
		ifname := ContainerInterface(i)
		made = append(made, host)
		if err := m.attachOne(ch, ns, st, host, ifname, addr); err != nil {
			return nil, fmt.Errorf("attach container %q to network %q: %w", container, st.Name, err)
		}
		out = append(out, Attachment{Network: st.Name, Interface: ifname, Address: netip.PrefixFrom(addr, st.Subnet.Bits())})
		m.log.Debug("container attached", "stack", stack, "container", container, "network", st.Name, "interface", ifname, "address", addr, "veth", host)
	}
	return out, nil
}

// attachOne makes the veth pair host/ifname between st's bridge and the
// container namespace ns (netlink handle ch) and configures ifname.
func (m *Manager) attachOne(ch *netlink.Handle, ns netns.NsHandle, st *netState, host, ifname string, addr netip.Addr) error {
	br, err := m.ensureBridge(st)
	if err != nil {
		return err
	}
	// Links left by an earlier Attach: the host end (which takes its peer
	// with it) and an interface of the same name in the container.
	if err := m.deleteLink(host); err != nil {
		return err
	}
	if old, err := ch.LinkByName(ifname); err == nil {
		if err := ch.LinkDel(old); err != nil {
			return fmt.Errorf("delete old %s in container: %w", ifname, err)
		}
	} else if !isNotFound(err) {
		return fmt.Errorf("find %s in container: %w", ifname, err)
	}

	attrs := netlink.NewLinkAttrs()
	attrs.Name = host
	attrs.MasterIndex = br.Attrs().Index
	attrs.MTU = br.Attrs().MTU
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: ifname, PeerNamespace: netlink.NsFd(ns)}
	if err := m.h.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", host, err)
	}
	hl, err := m.h.LinkByName(host)
	if err != nil {
		return fmt.Errorf("find veth %s: %w", host, err)
	}
	if err := m.markLink(hl); err != nil {
		return err
	}
	if err := m.h.LinkSetUp(hl); err != nil {
		return fmt.Errorf("set veth %s up: %w", host, err)
	}

	cl, err := ch.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("find %s in container: %w", ifname, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(st.Subnet.Bits(), 32)}}
	if err := ch.AddrAdd(cl, a); err != nil {
		return fmt.Errorf("set address %s on %s: %w", a.IPNet, ifname, err)
	}
	if err := ch.LinkSetUp(cl); err != nil {
		return fmt.Errorf("set %s up: %w", ifname, err)
	}
	return nil
}

// Detach disconnects container of stack from all of the stack's networks:
// it deletes the host-side veths (their peers go with them) and frees the
// container's addresses. Safe to call twice and for a container never
// attached.
func (m *Manager) Detach(ctx context.Context, stack, container string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	var errs []error
	for k, st := range m.nets {
		if k.stack != stack {
			continue
		}
		if err := m.detachOne(st, container); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detach container %q of stack %q: %w", container, stack, err)
	}
	return nil
}

func (m *Manager) detachOne(st *netState, container string) error {
	if err := m.deleteLink(VethName(m.instance, st.Stack, container, st.Name)); err != nil {
		return err
	}
	if _, ok := st.Addresses[container]; !ok {
		return nil
	}
	next := st.clone()
	delete(next.Addresses, container)
	if err := next.save(m.dir); err != nil {
		return err
	}
	*st = *next
	m.log.Debug("container detached", "stack", st.Stack, "container", container, "network", st.Name)
	return nil
}

// ContainerRef names one container of one stack.
type ContainerRef struct{ Stack, Name string }

// Cleanup brings the host namespace back in line with what berthd knows,
// e.g. after a crash. Containers not in keep are detached from every
// network (links deleted, addresses freed); then every berth-named bridge
// ("bb-*") of no known network and every berth-named veth ("bv-*") of no
// kept container is deleted if its alias marks it as this instance's.
// Links marked by another berth instance, or not marked at all, are never
// touched, so berthds sharing a host namespace do not cut each other off.
// Bridges of known networks stay, even with no container on them. All
// errors are returned together, after trying all.
func (m *Manager) Cleanup(ctx context.Context, keep []ContainerRef) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	kept := make(map[ContainerRef]bool, len(keep))
	for _, c := range keep {
		kept[c] = true
	}
	var errs []error
	known := make(map[string]bool)
	for _, st := range m.nets {
		known[st.Bridge] = true
		for c := range st.Addresses {
			if kept[ContainerRef{st.Stack, c}] {
				continue
			}
			if err := m.detachOne(st, c); err != nil {
				errs = append(errs, err)
			}
		}
		for c := range st.Addresses {
			known[VethName(m.instance, st.Stack, c, st.Name)] = true
		}
	}
	links, err := retryDump(m.h.LinkList)
	if err != nil {
		return fmt.Errorf("cleanup: list links: %w", errors.Join(append(errs, err)...))
	}
	for _, l := range links {
		name := l.Attrs().Name
		berth := (l.Type() == "bridge" && isBerthLink(name, bridgePrefix)) ||
			(l.Type() == "veth" && isBerthLink(name, vethPrefix))
		if !berth || known[name] {
			continue
		}
		if alias := l.Attrs().Alias; alias != m.mark {
			m.log.Debug("link not marked as this instance's skipped", "link", name, "alias", alias)
			continue
		}
		if err := m.h.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete link %s: %w", name, err))
			continue
		}
		m.log.Info("leftover link deleted", "link", name)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	return nil
}
