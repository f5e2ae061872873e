package network

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Default pool berth allocates subnets from when a playbook names none.
var (
	defaultPool     = netip.MustParsePrefix("10.89.0.0/16")
	defaultPoolBits = 24
)

// maxBits is the longest prefix a network may have: a /30 holds the
// network address, the gateway, one container and the broadcast address.
const maxBits = 30

func checkSubnet(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() {
		return fmt.Errorf("subnet %s: only IPv4 subnets are supported: %w", p, ErrInvalidSubnet)
	}
	if p.Bits() > maxBits {
		return fmt.Errorf("subnet %s is smaller than /%d and cannot hold a gateway and a container: %w", p, maxBits, ErrInvalidSubnet)
	}
	return nil
}

func u32(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func fromU32(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func addrAdd(a netip.Addr, n uint64) netip.Addr { return fromU32(u32(a) + uint32(n)) }

// gateway returns the first host address of p, which the bridge holds.
func gateway(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// hostRange returns the first container address of p (after the gateway)
// and how many there are (up to, not including, the broadcast address).
func hostRange(p netip.Prefix) (netip.Addr, uint64) {
	size := uint64(1) << (32 - p.Bits())
	return gateway(p).Next(), size - 3
}

// poolSubnets calls yield with each subnet of size bits in pool, in order.
func poolSubnets(pool netip.Prefix, bits int, yield func(netip.Prefix) bool) {
	count := uint64(1) << (bits - pool.Bits())
	step := uint64(1) << (32 - bits)
	base := pool.Masked().Addr()
	for i := range count {
		if !yield(netip.PrefixFrom(addrAdd(base, i*step), bits)) {
			return
		}
	}
}
