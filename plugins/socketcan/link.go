package socketcan

import (
	"encoding/binary"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/devices/can"
)

// linkState reads an interface's controller state from netlink: the CAN
// state of a real controller; error-active or stopped (down) for an
// interface without one (vcan).
func linkState(ifname string) (can.State, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return can.StateUnknown, fmt.Errorf("state of %s: %w", ifname, err)
	}
	if l.Attrs().Flags&unix.IFF_UP == 0 {
		return can.StateStopped, nil
	}
	c, ok := l.(*netlink.Can)
	if !ok {
		return can.StateErrorActive, nil
	}
	switch c.State {
	case netlink.CAN_STATE_ERROR_ACTIVE, netlink.CAN_STATE_ERROR_WARNING:
		return can.StateErrorActive, nil
	case netlink.CAN_STATE_ERROR_PASSIVE:
		return can.StateErrorPassive, nil
	case netlink.CAN_STATE_BUS_OFF:
		return can.StateBusOff, nil
	case netlink.CAN_STATE_STOPPED, netlink.CAN_STATE_SLEEPING:
		return can.StateStopped, nil
	}
	return can.StateUnknown, nil
}

// linkMTU returns the interface's MTU: 16 classical, 72 CAN FD.
func linkMTU(ifname string) (int, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return 0, fmt.Errorf("interface %s: %w", ifname, err)
	}
	return l.Attrs().MTU, nil
}

// Netlink CAN attributes (linux/can/netlink.h) the netlink package reads
// but cannot set.
const (
	iflaCANBittiming     = 1
	iflaCANCtrlmode      = 5
	iflaCANDataBittiming = 8
	ctrlmodeFD           = 0x20
)

// bittiming encodes struct can_bittiming with only the bitrate set: the
// kernel computes the rest from the controller's constants, as
// `ip link set can0 type can bitrate N` does.
func bittiming(bitrate uint32) []byte {
	b := make([]byte, 32)
	binary.NativeEndian.PutUint32(b, bitrate)
	return b
}

// linkRequest builds the RTM_NEWLINK message that sets the bit rates and
// FD mode of CAN interface index: what `ip link set IF type can bitrate B
// [dbitrate D fd on|off]` sends. A zero bitrate leaves the bit timing
// alone; fd sets CAN_CTRLMODE_FD on or off.
func linkRequest(index int, bitrate, dataBitrate uint32, fd bool) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("can"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	if bitrate > 0 {
		data.AddRtAttr(iflaCANBittiming, bittiming(bitrate))
	}
	if dataBitrate > 0 {
		data.AddRtAttr(iflaCANDataBittiming, bittiming(dataBitrate))
	}
	mode := make([]byte, 8) // struct can_ctrlmode { mask, flags }
	binary.NativeEndian.PutUint32(mode, ctrlmodeFD)
	if fd {
		binary.NativeEndian.PutUint32(mode[4:], ctrlmodeFD)
	}
	data.AddRtAttr(iflaCANCtrlmode, mode)
	req.AddData(info)
	return req
}

// setBitrate takes the interface down, sets its bit rates and FD mode, and
// brings it up again. It needs CAP_NET_ADMIN and a real CAN controller
// (vcan has no bit timing).
func setBitrate(ifname string, bitrate, dataBitrate uint32, fd bool) error {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("set bitrate of %s: %w", ifname, err)
	}
	if err := netlink.LinkSetDown(l); err != nil {
		return fmt.Errorf("set bitrate of %s: down: %w", ifname, err)
	}
	if _, err := linkRequest(l.Attrs().Index, bitrate, dataBitrate, fd).Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("set bitrate of %s: %w", ifname, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set bitrate of %s: up: %w", ifname, err)
	}
	return nil
}
