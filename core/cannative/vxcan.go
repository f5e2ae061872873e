package cannative

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/network"
)

// MTUs of CAN interfaces (linux/can.h): struct can_frame, struct canfd_frame.
const (
	classicMTU = 16
	fdMTU      = 72
)

// Host link names and marks. The host end of every vxcan pair berth makes
// is called "bc-" and ten hex characters of a hash of the instance, the
// namespace and the container's interface name, and carries the alias
// "berth:<instance>", the mark core/network puts on its bridges and veths.
const (
	hostPrefix = "bc-"
	hashChars  = 10
	maxIfName  = 15 // IFNAMSIZ - 1
)

// vxcanInfoPeer is VXCAN_INFO_PEER (linux/can/vxcan.h): the peer's struct
// ifinfomsg and attributes, nested in IFLA_INFO_DATA as veth's peer is.
const vxcanInfoPeer = 1

// HostName returns the name of the host end of the vxcan pair that gives
// the namespace at netns the interface ifname for the berth instance:
// "bc-" and ten hex characters, 13 in all. It is a pure function, so a
// restarted berthd finds its links again (see Cleanup's keep).
func HostName(instance, netns, ifname string) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{instance, filepath.Clean(netns), ifname}, "\x00")))
	return hostPrefix + hex.EncodeToString(sum[:])[:hashChars]
}

// isHostName reports whether name has the shape of HostName's names.
func isHostName(name string) bool {
	if len(name) != len(hostPrefix)+hashChars || !strings.HasPrefix(name, hostPrefix) {
		return false
	}
	_, err := hex.DecodeString(name[len(hostPrefix):])
	return err == nil
}

// checkInstance validates an instance identity as core/network does.
func checkInstance(id string) error {
	if err := network.CheckInstance(id); err != nil {
		return fmt.Errorf("%w (berthd passes network.InstanceID of its state directory): %w", err, ErrInvalidAttachment)
	}
	return nil
}

// CheckIfName reports whether name can be a Linux interface name: 1 to 15
// bytes, not "." or "..", and none of '/', ':', '%', white space or
// control characters (the kernel refuses the first ones and reads '%' as
// a template for numbered names). The error wraps ErrInvalidAttachment.
func CheckIfName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("interface name is empty: %w", ErrInvalidAttachment)
	case len(name) > maxIfName:
		return fmt.Errorf("interface name %q is %d bytes, Linux allows at most %d: %w", name, len(name), maxIfName, ErrInvalidAttachment)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is not allowed: %w", name, ErrInvalidAttachment)
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c == 0x7f || c == '/' || c == ':' || c == '%' {
			return fmt.Errorf("interface name %q holds %q; use letters, digits, '-', '_' or '.': %w", name, rune(c), ErrInvalidAttachment)
		}
	}
	return nil
}

// vxcanRequest builds the RTM_NEWLINK message that creates a vxcan pair,
// both ends down and with the given MTU: host in the calling thread's
// namespace, peer in the namespace open at nsFD (or, if nsFD < 0, beside
// host); a non-zero index asks for that interface index for both ends. It
// is what `ip link add HOST index I mtu M type vxcan peer name PEER index
// I mtu M netns NS` sends. The peer cannot be set up in the same request: the
// kernel configures it before it links the pair, and a vxcan end without
// its peer refuses to open (ENOTCONN).
func vxcanRequest(host, peer string, index, mtu, nsFD int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	hm := nl.NewIfInfomsg(unix.AF_UNSPEC)
	hm.Index = int32(index)
	req.AddData(hm)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(host)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(mtu))))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("vxcan"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	p := data.AddRtAttr(vxcanInfoPeer, nil)
	nl.NewIfInfomsgChild(p, unix.AF_UNSPEC).Index = int32(index)
	p.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(peer))
	p.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(mtu)))
	if nsFD >= 0 {
		p.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(nsFD)))
	}
	req.AddData(info)
	return req
}

// openNetNS opens the network namespace file at path (a bind mount such as
// /run/berth/.../netns, or /proc/PID/ns/net) and checks that it is one.
// The caller closes the file.
func openNetNS(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err == nil && t == unix.CLONE_NEWNET {
		return f, nil
	}
	f.Close()
	what := "another kind of namespace"
	if err != nil {
		what = "not a namespace: " + err.Error()
	}
	return nil, fmt.Errorf("%s is %s; want a network namespace (a netns bind mount or /proc/PID/ns/net): %w", path, what, ErrInvalidAttachment)
}
