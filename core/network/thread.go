package network

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNetNS runs f on a thread of its own inside the network namespace at
// path (a bind-mounted namespace file or /proc/PID/ns/net), then moves the
// thread back. Sockets f opens stay in that namespace; netlink requests f
// makes through the netlink package's default handle go there. A thread
// that cannot move back is retired with its goroutine, never reused. An
// empty path runs f here, in the caller's namespace.
func InNetNS(path string, f func() error) error {
	if path == "" {
		return f()
	}
	return onThread(func() error {
		ns, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open network namespace: %w", err)
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter network namespace %s: %w", path, err)
		}
		return nil
	}, f)
}

// InNewNetNS runs f on a thread of its own in a new network namespace,
// then moves the thread back, so the namespace ends when nothing f made
// holds it (a bind mount of the thread's namespace does). It needs
// CAP_SYS_ADMIN.
func InNewNetNS(f func() error) error {
	return onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("make a network namespace: %w (needs CAP_SYS_ADMIN)", err)
		}
		return nil
	}, f)
}

// onThread locks a fresh goroutine to its thread, runs enter (which moves
// the thread to another network namespace) and f, and moves the thread
// back. Should moving back fail, the goroutine returns still locked and
// the Go runtime ends the thread rather than reuse it in the wrong
// namespace.
func onThread(enter, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := enter(); err != nil {
			// The thread may have moved part-way: do not reuse it.
			if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
			errc <- err
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to the original network namespace: %w", err))
			return // still locked: the thread ends with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
