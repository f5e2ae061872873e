package network

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NewNetNS creates a new network namespace and keeps it alive by
// bind-mounting it at path (a file it creates; its directory is created if
// missing), with the loopback interface up. The namespace lives until
// [DeleteNetNS] and can be named by path in an OCI runtime spec. path must
// not exist; if it does, the error wraps fs.ErrExist. On error nothing is
// left behind.
func NewNetNS(path string) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create netns %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns %s: %w", path, err)
	}
	f.Close()
	defer func() {
		if err != nil {
			_ = DeleteNetNS(path)
		}
	}()

	err = InNewNetNS(func() error {
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount %s: %w", src, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create netns %s: %w", path, err)
	}
	if err := setLoopbackUp(path); err != nil {
		return fmt.Errorf("create netns %s: %w", path, err)
	}
	return nil
}

// setLoopbackUp brings up lo in the namespace bound at path.
func setLoopbackUp(path string) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	return upLoopback(h)
}

func upLoopback(h *netlink.Handle) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// DeleteNetNS unmounts the namespace bound at path and removes the file. The
// namespace itself goes away once no process is in it. Safe to call twice
// and on a path that never existed.
func DeleteNetNS(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	// EINVAL: not a mount point (already unmounted); ENOENT: no file.
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete netns %s: unmount: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete netns %s: %w", path, err)
	}
	return nil
}
