package cannative

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/network"
)

// MinHops is the can-gw hop limit (its max_hops module parameter) the
// native path needs: a frame one container sends is routed once onto the
// bus and once more, from the bus's echo, to every other container. With
// the kernel's default of 1 the second hop is dropped.
const MinHops = 2

// maxHopsParam is can-gw's max_hops parameter; the file exists whenever
// can-gw is loaded or built in.
const maxHopsParam = "/sys/module/can_gw/parameters/max_hops"

// Supported reports whether this kernel can serve CAN grants natively. It
// creates a vxcan pair and a can-gw rule between its ends in a throwaway
// network namespace (which loads vxcan on demand, as Attach would), and
// reads can-gw's hop limit. The error wraps ErrUnsupported and names each
// thing missing — vxcan, can-gw, a hop limit of at least MinHops — with
// the kernel option or module to provide it; until then berthd serves CAN
// grants through the broker. It needs CAP_NET_ADMIN and CAP_SYS_ADMIN
// (to make the namespace); without them the error says so and does not
// wrap ErrUnsupported.
func Supported() error {
	var lacks []string
	vx, gw, err := probe()
	if err != nil {
		return fmt.Errorf("native CAN: cannot probe the kernel: %w", err)
	}
	if !vx {
		lacks = append(lacks, "vxcan (CONFIG_CAN_VXCAN: modprobe vxcan)")
	}
	if !gw {
		lacks = append(lacks, "can-gw (CONFIG_CAN_GW: modprobe can-gw max_hops=2)")
	} else if hops, err := MaxHops(); err != nil {
		return fmt.Errorf("native CAN: %w", err)
	} else if hops < MinHops {
		lacks = append(lacks, fmt.Sprintf("can-gw with max_hops >= %d (it has %d, so frames one container sends would not reach the others: rmmod can-gw; modprobe can-gw max_hops=%d, or put \"options can-gw max_hops=%d\" in /etc/modprobe.d)", MinHops, hops, MinHops, MinHops))
	}
	if len(lacks) == 0 {
		return nil
	}
	return fmt.Errorf("native CAN needs %s, which this kernel lacks; CAN grants are served through the broker until then: %w", strings.Join(lacks, " and "), ErrUnsupported)
}

// MaxHops returns can-gw's hop limit, its max_hops module parameter.
func MaxHops() (int, error) {
	b, err := os.ReadFile(maxHopsParam)
	if err != nil {
		return 0, fmt.Errorf("read can-gw hop limit: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read can-gw hop limit from %s: %w", maxHopsParam, err)
	}
	return n, nil
}

// probe tries vxcan and can-gw in a throwaway network namespace. Without
// vxcan it checks for can-gw in sysfs.
func probe() (vxcan, gw bool, err error) {
	err = network.InNewNetNS(func() error {
		vxcan, gw, err = probeHere()
		return err
	})
	return vxcan, gw, err
}

// probeHere makes a vxcan pair and a can-gw rule between its ends in the
// calling thread's (throwaway) namespace, and deletes them.
func probeHere() (vxcan, gw bool, err error) {
	const a, b = "probe0", "probe1"
	if _, err := vxcanRequest(a, b, 0, classicMTU, -1).Execute(unix.NETLINK_ROUTE, 0); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			_, statErr := os.Stat(maxHopsParam)
			return false, statErr == nil, nil
		}
		return false, false, fmt.Errorf("create a vxcan pair: %w (needs CAP_NET_ADMIN)", err)
	}
	la, errA := netlink.LinkByName(a)
	lb, errB := netlink.LinkByName(b)
	if err := errors.Join(errA, errB); err != nil {
		return true, false, fmt.Errorf("find the probe vxcan pair: %w", err)
	}
	defer netlink.LinkDel(la) // the peer and the rule go with it
	err = addRule(gwRule{Src: la.Attrs().Index, Dst: lb.Attrs().Index})
	switch {
	case err == nil:
		return true, true, nil
	case errors.Is(err, ErrUnsupported):
		return true, false, nil
	}
	return true, false, err
}
