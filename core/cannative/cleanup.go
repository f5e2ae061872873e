package cannative

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/berth-io/berth/core/network"
)

// Cleanup deletes every host vxcan end the berth instance made (named as
// HostName names them, marked "berth:<instance>") except those named in
// keep (the HostName of attachments still in use, e.g. of containers a
// restarted berthd re-adopts). Deleting an end deletes its peer, the
// container's interface, and the kernel drops the can-gw rules naming it.
// Links of other instances and unmarked links are never touched. It returns the names it
// deleted; errors are returned together, after trying all. Call it when
// berthd starts, before attaching again.
func Cleanup(ctx context.Context, instance string, keep ...string) ([]string, error) {
	if err := checkInstance(instance); err != nil {
		return nil, fmt.Errorf("native CAN cleanup: %w", err)
	}
	links, err := netlink.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("native CAN cleanup: list links: %w", err)
	}
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		// Links changed during the dump: one retry sees a stable list.
		if links, err = netlink.LinkList(); err != nil {
			return nil, fmt.Errorf("native CAN cleanup: list links: %w", err)
		}
	}
	mark := network.LinkMark(instance)
	var (
		deleted []string
		errs    []error
	)
	for _, l := range links {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		at := l.Attrs()
		if l.Type() != "vxcan" || !isHostName(at.Name) || at.Alias != mark || slices.Contains(keep, at.Name) {
			continue
		}
		if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete host link %s: %w", at.Name, err))
			continue
		}
		deleted = append(deleted, at.Name)
	}
	if err := errors.Join(errs...); err != nil {
		return deleted, fmt.Errorf("native CAN cleanup of instance %s: %w", instance, err)
	}
	return deleted, nil
}
