package cannative

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// can-gw's rtnetlink interface (linux/can/gw.h): a rule is a route of
// family AF_CAN, made with RTM_NEWROUTE, removed with RTM_DELROUTE and
// listed with an RTM_GETROUTE dump. Each message starts with struct
// rtcanmsg; attributes follow.
const (
	cgwTypeCANCAN = 1 // CGW_TYPE_CAN_CAN

	cgwHandled  = 7  // CGW_HANDLED: u32, frames forwarded
	cgwDropped  = 8  // CGW_DROPPED: u32, frames the destination refused
	cgwSrcIf    = 9  // CGW_SRC_IF: u32 ifindex
	cgwDstIf    = 10 // CGW_DST_IF: u32 ifindex
	cgwFilter   = 11 // CGW_FILTER: struct can_filter
	cgwDeleted  = 12 // CGW_DELETED: u32, frames over the hop limit
	cgwLimHops  = 13 // CGW_LIM_HOPS: u8
	rtcanmsgLen = 4
)

// Flags are a can-gw rule's flags (CGW_FLAGS_CAN_*).
type Flags uint16

// The rule flags.
const (
	// FlagEcho loops forwarded frames back to the destination's local
	// sockets (and rules), as a socket's own sends are.
	FlagEcho Flags = 0x01
	// FlagSrcTimestamp keeps the source frame's receive timestamp.
	FlagSrcTimestamp Flags = 0x02
	// FlagIIFTxOK allows sending a frame back to the interface it came in on.
	FlagIIFTxOK Flags = 0x04
	// FlagFD makes the rule handle CAN FD frames instead of classical ones.
	FlagFD Flags = 0x08
)

// gwRule is a can-gw rule as the kernel holds it: a CAN-to-CAN route from
// interface Src to Dst for the frames Filter passes. The counters are read
// from a dump and ignored otherwise.
type gwRule struct {
	Src, Dst  int
	Filter    CANFilter
	Flags     Flags
	LimitHops uint8
	// Handled are frames forwarded; Dropped frames the destination
	// refused (down, queue full); Deleted frames over the hop limit.
	Handled, Dropped, Deleted uint32
	// modified is set for a dumped rule that rewrites frames or carries a
	// modification UID (CGW_MOD_*, CGW_CS_*, CGW_MOD_UID attributes);
	// berth never makes one, and deleteRule cannot match it.
	modified bool
}

// same reports whether r and o are the same rule, as the kernel matches a
// deletion: interfaces, filter, flags and hop limit.
func (r gwRule) same(o gwRule) bool {
	return r.Src == o.Src && r.Dst == o.Dst && r.Filter == o.Filter && r.Flags == o.Flags && r.LimitHops == o.LimitHops && !r.modified && !o.modified
}

func (r gwRule) String() string {
	return fmt.Sprintf("can-gw rule %d->%d filter %s flags %#x", r.Src, r.Dst, r.Filter, uint16(r.Flags))
}

// rtcanmsg is struct rtcanmsg { u8 can_family; u8 gwtype; u16 flags; }.
type rtcanmsg struct {
	gwtype uint8
	flags  Flags
}

func (m rtcanmsg) Len() int { return rtcanmsgLen }

func (m rtcanmsg) Serialize() []byte {
	b := []byte{unix.AF_CAN, m.gwtype, 0, 0}
	nl.NativeEndian().PutUint16(b[2:], uint16(m.flags))
	return b
}

// canFilterBytes encodes struct can_filter { canid_t can_id; canid_t can_mask; }.
func canFilterBytes(f CANFilter) []byte {
	b := make([]byte, 8)
	nl.NativeEndian().PutUint32(b, f.ID)
	nl.NativeEndian().PutUint32(b[4:], f.Mask)
	return b
}

// ruleRequest builds the RTM_NEWROUTE or RTM_DELROUTE message for r: what
// `cangw -A|-D -s SRC -d DST -f ID:MASK [-e] [-X] ...` sends. The filter is
// always sent, so a deletion matches a rule with a zero filter exactly.
func ruleRequest(msgType int, r gwRule) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(msgType, unix.NLM_F_ACK)
	req.AddData(rtcanmsg{gwtype: cgwTypeCANCAN, flags: r.Flags})
	if r.LimitHops != 0 {
		req.AddData(nl.NewRtAttr(cgwLimHops, nl.Uint8Attr(r.LimitHops)))
	}
	req.AddData(nl.NewRtAttr(cgwFilter, canFilterBytes(r.Filter)))
	req.AddData(nl.NewRtAttr(cgwSrcIf, nl.Uint32Attr(uint32(r.Src))))
	req.AddData(nl.NewRtAttr(cgwDstIf, nl.Uint32Attr(uint32(r.Dst))))
	return req
}

// errZeroIfindex refuses a rule without both interfaces: an RTM_DELROUTE
// with neither makes the kernel flush every can-gw rule of the namespace.
var errZeroIfindex = errors.New("can-gw rule without source and destination interface")

// addRule installs r in the calling thread's network namespace.
func addRule(r gwRule) error {
	if r.Src <= 0 || r.Dst <= 0 {
		return fmt.Errorf("add %s: %w", r, errZeroIfindex)
	}
	if _, err := ruleRequest(unix.RTM_NEWROUTE, r).Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("add %s: %w", r, gwErr(err))
	}
	return nil
}

// deleteRule removes the first rule the kernel holds that is the same as r
// (Link.Update uses it; closing a link leaves its rules to the kernel).
// It never sends a deletion without both interfaces (which would flush
// them all). A rule that is not there gives an error wrapping unix.EINVAL,
// which is what the kernel answers.
func deleteRule(r gwRule) error {
	if r.Src <= 0 || r.Dst <= 0 {
		return fmt.Errorf("delete %s: %w", r, errZeroIfindex)
	}
	if r.modified {
		return fmt.Errorf("delete %s: it rewrites frames, berth made no such rule; remove it with cangw -D", r)
	}
	if _, err := ruleRequest(unix.RTM_DELROUTE, r).Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("delete %s: %w", r, gwErr(err))
	}
	return nil
}

// listRules dumps every can-gw rule of the calling thread's network
// namespace, with its counters.
func listRules() ([]gwRule, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETROUTE, unix.NLM_F_DUMP)
	req.AddData(rtcanmsg{})
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWROUTE)
	if err != nil {
		return nil, fmt.Errorf("list can-gw rules: %w", gwErr(err))
	}
	var rules []gwRule
	for _, m := range msgs {
		r, ok, err := parseRule(m)
		if err != nil {
			return nil, fmt.Errorf("list can-gw rules: %w", err)
		}
		if ok {
			rules = append(rules, r)
		}
	}
	return rules, nil
}

// parseRule decodes one RTM_NEWROUTE message of a dump. ok is false for a
// message that is not a CAN-to-CAN rule: without can-gw the kernel answers
// an AF_CAN dump with every other family's routes.
func parseRule(m []byte) (r gwRule, ok bool, err error) {
	if len(m) < rtcanmsgLen || m[0] != unix.AF_CAN || m[1] != cgwTypeCANCAN {
		return gwRule{}, false, nil
	}
	ne := nl.NativeEndian()
	r.Flags = Flags(ne.Uint16(m[2:]))
	attrs, err := nl.ParseRouteAttr(m[rtcanmsgLen:])
	if err != nil {
		return gwRule{}, false, fmt.Errorf("parse can-gw rule: %w", err)
	}
	u32 := func(b []byte) uint32 {
		if len(b) < 4 {
			return 0
		}
		return ne.Uint32(b)
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case cgwSrcIf:
			r.Src = int(u32(a.Value))
		case cgwDstIf:
			r.Dst = int(u32(a.Value))
		case cgwFilter:
			if len(a.Value) >= 8 {
				r.Filter = CANFilter{ID: ne.Uint32(a.Value), Mask: ne.Uint32(a.Value[4:])}
			}
		case cgwHandled:
			r.Handled = u32(a.Value)
		case cgwDropped:
			r.Dropped = u32(a.Value)
		case cgwDeleted:
			r.Deleted = u32(a.Value)
		case cgwLimHops:
			if len(a.Value) > 0 {
				r.LimitHops = a.Value[0]
			}
		default:
			r.modified = true // CGW_MOD_*, CGW_FDMOD_*, CGW_CS_*, CGW_MOD_UID
		}
	}
	return r, true, nil
}

// gwErr explains the errors the kernel gives for can-gw requests.
func gwErr(err error) error {
	switch {
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EPFNOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("%w (the kernel has no can-gw: modprobe can-gw max_hops=2): %w", err, ErrUnsupported)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w (needs CAP_NET_ADMIN)", err)
	}
	return err
}
