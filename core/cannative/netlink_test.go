package cannative

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/broker"
)

// body returns a request's payload: the message after its netlink header.
func body(t *testing.T, req *nl.NetlinkRequest) []byte {
	t.Helper()
	b := req.Serialize()
	if len(b) < unix.SizeofNlMsghdr || int(binary.NativeEndian.Uint32(b)) != len(b) {
		t.Fatalf("request of %d bytes says it has %d", len(b), binary.NativeEndian.Uint32(b))
	}
	return b[unix.SizeofNlMsghdr:]
}

// TestRuleRequest: the bytes are what cangw sends for
// `cangw -A -s 3 -d 7 -e -X -f 123:C00007FF` (by index), in host order.
func TestRuleRequest(t *testing.T) {
	r := gwRule{Src: 3, Dst: 7, Filter: CANFilter{0x123, 0xC00007FF}, Flags: FlagEcho | FlagFD}
	req := ruleRequest(unix.RTM_NEWROUTE, r)
	if req.Type != unix.RTM_NEWROUTE || req.Flags != unix.NLM_F_REQUEST|unix.NLM_F_ACK {
		t.Errorf("type %d flags %#x", req.Type, req.Flags)
	}
	want := []byte{
		unix.AF_CAN, cgwTypeCANCAN, 0x09, 0x00, // rtcanmsg: family, CAN_CAN, flags ECHO|FD
		12, 0, cgwFilter, 0, 0x23, 0x01, 0, 0, 0xFF, 0x07, 0, 0xC0, // struct can_filter
		8, 0, cgwSrcIf, 0, 3, 0, 0, 0,
		8, 0, cgwDstIf, 0, 7, 0, 0, 0,
	}
	if got := body(t, req); !bytes.Equal(got, want) {
		t.Errorf("RTM_NEWROUTE body\n got % X\nwant % X", got, want)
	}
	r.LimitHops = 1
	if got := body(t, ruleRequest(unix.RTM_DELROUTE, r)); !bytes.Contains(got, []byte{5, 0, cgwLimHops, 0, 1}) {
		t.Errorf("request with a hop limit lacks CGW_LIM_HOPS: % X", got)
	}
}

// TestDeleteRuleRefusesFlush: a deletion naming no interface would make
// the kernel flush every rule; it is never sent.
func TestDeleteRuleRefusesFlush(t *testing.T) {
	for _, r := range []gwRule{{}, {Src: 3}, {Dst: 3}} {
		if err := deleteRule(r); !errors.Is(err, errZeroIfindex) {
			t.Errorf("deleteRule(%v) = %v, want errZeroIfindex", r, err)
		}
		if err := addRule(r); !errors.Is(err, errZeroIfindex) {
			t.Errorf("addRule(%v) = %v, want errZeroIfindex", r, err)
		}
	}
}

// dumpMessage builds an RTM_NEWROUTE payload as can-gw's dump writes one.
func dumpMessage(family byte, flags uint16, attrs ...*nl.RtAttr) []byte {
	b := rtcanmsg{gwtype: cgwTypeCANCAN, flags: Flags(flags)}.Serialize()
	b[0] = family
	for _, a := range attrs {
		b = append(b, a.Serialize()...)
	}
	return b
}

func TestParseRule(t *testing.T) {
	u32 := func(typ int, v uint32) *nl.RtAttr { return nl.NewRtAttr(typ, nl.Uint32Attr(v)) }
	m := dumpMessage(unix.AF_CAN, uint16(FlagSrcTimestamp),
		u32(cgwHandled, 10), u32(cgwDropped, 2), u32(cgwDeleted, 1),
		nl.NewRtAttr(cgwLimHops, []byte{1}),
		nl.NewRtAttr(cgwFilter, canFilterBytes(CANFilter{0x100, 0x80000700})),
		u32(cgwSrcIf, 4), u32(cgwDstIf, 9))
	got, ok, err := parseRule(m)
	want := gwRule{Src: 4, Dst: 9, Filter: CANFilter{0x100, 0x80000700}, Flags: FlagSrcTimestamp, LimitHops: 1, Handled: 10, Dropped: 2, Deleted: 1}
	if err != nil || !ok || got != want {
		t.Errorf("parseRule = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	if !got.same(gwRule{Src: 4, Dst: 9, Filter: CANFilter{0x100, 0x80000700}, Flags: FlagSrcTimestamp, LimitHops: 1}) {
		t.Error("a dumped rule is not the same as the rule it counts for")
	}

	// The kernel leaves the filter out when it is zero (all frames).
	got, ok, err = parseRule(dumpMessage(unix.AF_CAN, 0, u32(cgwSrcIf, 4), u32(cgwDstIf, 9)))
	if err != nil || !ok || got.Filter != (CANFilter{}) {
		t.Errorf("rule without a filter: %+v, %v, %v", got, ok, err)
	}
	// A rule that rewrites frames is not berth's and cannot be matched.
	got, _, _ = parseRule(dumpMessage(unix.AF_CAN, 0, nl.NewRtAttr(1 /* CGW_MOD_AND */, make([]byte, 17)), u32(cgwSrcIf, 4), u32(cgwDstIf, 9)))
	if !got.modified || got.same(got) {
		t.Errorf("rule with CGW_MOD_AND: modified %v", got.modified)
	}
	// Without can-gw the kernel answers with other families' routes.
	if _, ok, err := parseRule(dumpMessage(unix.AF_INET, 0, u32(cgwSrcIf, 4))); ok || err != nil {
		t.Errorf("an AF_INET route parsed as a can-gw rule: %v, %v", ok, err)
	}
}

// attr finds the attribute typ in the attribute list b.
func attr(t *testing.T, b []byte, typ int) []byte {
	t.Helper()
	attrs, err := nl.ParseRouteAttr(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range attrs {
		if int(a.Attr.Type&^unix.NLA_F_NESTED) == typ {
			return a.Value
		}
	}
	t.Fatalf("attribute %d missing from % X", typ, b)
	return nil
}

// TestVxcanRequest: the message is what `ip link add bc-x index 42 mtu 72
// type vxcan peer name body index 42 mtu 72 netns FD` sends.
func TestVxcanRequest(t *testing.T) {
	req := vxcanRequest("bc-x", "body", 42, fdMTU, 5)
	if req.Type != unix.RTM_NEWLINK || req.Flags != unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK {
		t.Errorf("type %d flags %#x", req.Type, req.Flags)
	}
	b := body(t, req)
	if idx := int32(binary.NativeEndian.Uint32(b[4:])); idx != 42 {
		t.Errorf("host ifi_index %d, want 42", idx)
	}
	attrs := b[unix.SizeofIfInfomsg:]
	if got := string(attr(t, attrs, unix.IFLA_IFNAME)); got != "bc-x\x00" {
		t.Errorf("IFLA_IFNAME %q", got)
	}
	if got := binary.NativeEndian.Uint32(attr(t, attrs, unix.IFLA_MTU)); got != fdMTU {
		t.Errorf("IFLA_MTU %d", got)
	}
	info := attr(t, attrs, unix.IFLA_LINKINFO)
	if got := string(attr(t, info, nl.IFLA_INFO_KIND)); got != "vxcan" {
		t.Errorf("IFLA_INFO_KIND %q", got)
	}
	peer := attr(t, attr(t, info, nl.IFLA_INFO_DATA), vxcanInfoPeer)
	if idx := int32(binary.NativeEndian.Uint32(peer[4:])); idx != 42 {
		t.Errorf("peer ifi_index %d, want 42", idx)
	}
	if flags := binary.NativeEndian.Uint32(peer[8:]); flags != 0 {
		t.Errorf("peer ifi_flags %#x: the kernel cannot open a vxcan end before its pair is linked", flags)
	}
	pattrs := peer[unix.SizeofIfInfomsg:]
	if got := string(attr(t, pattrs, unix.IFLA_IFNAME)); got != "body\x00" {
		t.Errorf("peer IFLA_IFNAME %q", got)
	}
	if got := binary.NativeEndian.Uint32(attr(t, pattrs, unix.IFLA_MTU)); got != fdMTU {
		t.Errorf("peer IFLA_MTU %d", got)
	}
	if got := binary.NativeEndian.Uint32(attr(t, pattrs, unix.IFLA_NET_NS_FD)); got != 5 {
		t.Errorf("peer IFLA_NET_NS_FD %d", got)
	}
	if bytes.Contains(body(t, vxcanRequest("a", "b", 0, classicMTU, -1)), nl.Uint32Attr(5)) {
		t.Error("a pair in one namespace carries IFLA_NET_NS_FD")
	}
}

func TestCheckIfName(t *testing.T) {
	for _, ok := range []string{"body", "can0", "powertrain-can1", "a.b_c"} {
		if err := CheckIfName(ok); err != nil {
			t.Errorf("CheckIfName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "powertrain-can12", "a/b", "a:b", "a b", "can%d", "a\x00b", "tab\t"} {
		if err := CheckIfName(bad); !errors.Is(err, ErrInvalidAttachment) {
			t.Errorf("CheckIfName(%q) = %v, want ErrInvalidAttachment", bad, err)
		}
	}
}

func TestHostName(t *testing.T) {
	a := HostName("i1", "/run/berth/s/c/netns", "body")
	if !isHostName(a) || len(a) > maxIfName || CheckIfName(a) != nil {
		t.Errorf("HostName = %q: not a valid berth host link name", a)
	}
	if b := HostName("i1", "/run/berth/s/c/../c/netns", "body"); b != a {
		t.Errorf("HostName differs for the same namespace path written two ways: %s, %s", a, b)
	}
	for _, other := range []string{HostName("i2", "/run/berth/s/c/netns", "body"), HostName("i1", "/run/berth/s/d/netns", "body"), HostName("i1", "/run/berth/s/c/netns", "diag")} {
		if other == a {
			t.Errorf("HostName collides: %s", a)
		}
	}
	for _, notOurs := range []string{"bb-0123456789", "bc-012345678", "bc-01234567zz", "vcan0"} {
		if isHostName(notOurs) {
			t.Errorf("isHostName(%q) = true", notOurs)
		}
	}
}

// TestAttachRefuses: a bad attachment is refused before the kernel is
// asked anything (so this runs anywhere), naming container, grant and bus.
func TestAttachRefuses(t *testing.T) {
	ids, _ := broker.ParseFilters([]string{"0x100"})
	g := broker.Grant{Name: "body", Device: "can0", Receive: ids}
	tests := []struct {
		name string
		a    Attachment
		want error
		text string
	}{
		{"bad instance", Attachment{Instance: "a/b", Netns: "/x", Grant: g}, ErrInvalidAttachment, "instance id"},
		{"no instance", Attachment{Netns: "/x", Grant: g}, ErrInvalidAttachment, "instance id"},
		{"long grant name", Attachment{Instance: "i", Netns: "/x", Grant: broker.Grant{Name: "powertrain-diagnostics", Device: "can0"}}, ErrInvalidAttachment, "the grant's name is the container's interface name"},
		{"bad interface", Attachment{Instance: "i", Netns: "/x", IfName: "can:0", Grant: g}, ErrInvalidAttachment, `interface name "can:0"`},
		{"no namespace", Attachment{Instance: "i", Grant: g}, ErrInvalidAttachment, "no network namespace"},
		{"send rate", Attachment{Instance: "i", Netns: "/x", Grant: broker.Grant{Name: "body", Device: "can0", Send: ids, SendRate: broker.Rate{PerSecond: 10}}}, ErrNotNative, "send_rate"},
		{"bad grant", Attachment{Instance: "i", Netns: "/x", Grant: broker.Grant{Name: "body"}}, broker.ErrInvalidGrant, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.a.Bus, tt.a.Container = "can7", "app"
			_, err := Attach(context.Background(), tt.a)
			prefix := `container app: native CAN grant "` + tt.a.Grant.Name + `" on can7: `
			if !errors.Is(err, tt.want) || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("Attach: %v\nwant an error wrapping %v, starting %q and saying %q", err, tt.want, prefix, tt.text)
			}
		})
	}
}

// TestSupported: in the HIL VM the kernel has everything; on a host
// without CAN (this project's build machines) the error names what is
// missing and how to get it, and that the broker serves the grants.
func TestSupported(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: probes vxcan and can-gw in a new network namespace")
	}
	if os.Getenv(guestEnv) != "" {
		needKernel(t) // raises can-gw's hop limit first
		if err := Supported(); err != nil {
			t.Fatalf("in the HIL VM: %v", err)
		}
		return
	}
	err := Supported()
	vx, gw, perr := probe()
	if perr != nil {
		t.Fatal(perr)
	}
	t.Logf("this kernel: vxcan %v, can-gw %v; Supported: %v", vx, gw, err)
	if vx && gw {
		if hops, herr := MaxHops(); herr == nil && hops >= MinHops && err != nil {
			t.Fatalf("Supported: %v, though the kernel has vxcan and can-gw with %d hops", err, hops)
		}
		return
	}
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "served through the broker") {
		t.Fatalf("Supported: %v, want ErrUnsupported saying the broker serves the grants", err)
	}
	for _, c := range []struct {
		has  bool
		text string
	}{{vx, "vxcan (CONFIG_CAN_VXCAN: modprobe vxcan)"}, {gw, "can-gw (CONFIG_CAN_GW: modprobe can-gw max_hops=2)"}} {
		if strings.Contains(err.Error(), c.text) == c.has {
			t.Errorf("Supported: %v\nmentions %q: %v, want %v", err, c.text, !c.has, !c.has)
		}
	}
}
