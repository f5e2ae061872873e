package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Handle is berthd's view of one monitored container. It is safe for
// concurrent use; Close releases it.
type Handle struct {
	dir        string
	pid        int
	monitorPid int

	mu     sync.Mutex
	pidfd  int           // pidfd of the monitor; -1 when unavailable
	reaped chan struct{} // closed when Start's child was reaped; nil after Attach
	closed bool
}

// Start writes cfg to cfg.Dir, starts a detached monitor for it and waits
// for the monitor's report. It returns once the container runs (Pid known),
// or an error wrapping ErrStartFailed with the runtime's message.
//
// The monitor runs in its own session with its stdio on /dev/null and
// cfg.Dir/monitor.log, so it and the container survive the caller's death,
// SIGKILL included. When ctx ends before the report, Start returns
// ctx.Err() and leaves the monitor to finish; Attach(cfg.Dir) re-adopts it
// and the runtime's Delete removes the container. A monitor directory
// holding a live monitor must not be reused.
func Start(ctx context.Context, cfg Config) (*Handle, error) {
	if err := cfg.normalize(); err != nil {
		return nil, fmt.Errorf("start monitor: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, logDir), 0o755); err != nil {
		return nil, fmt.Errorf("start monitor %s: %w", cfg.ID, err)
	}
	for _, f := range []string{exitFile, containerPid, monitorPidFile} {
		if err := os.Remove(filepath.Join(cfg.Dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("start monitor %s: %w", cfg.ID, err)
		}
	}
	if err := writeConfig(cfg); err != nil {
		return nil, fmt.Errorf("start monitor %s: write config: %w", cfg.ID, err)
	}
	h, rep, err := spawn(cfg)
	if err != nil {
		return nil, fmt.Errorf("start monitor %s: %w", cfg.ID, err)
	}
	defer rep.Close()

	type result struct {
		r   report
		err error
	}
	got := make(chan result, 1)
	go func() {
		var r report
		b, err := io.ReadAll(rep)
		if err == nil {
			if len(bytes.TrimSpace(b)) == 0 {
				err = io.ErrUnexpectedEOF
			} else {
				err = json.Unmarshal(b, &r)
			}
		}
		got <- result{r, err}
	}()
	select {
	case <-ctx.Done():
		rep.Close()
		h.Close()
		return nil, fmt.Errorf("start monitor %s: %w", cfg.ID, ctx.Err())
	case res := <-got:
		switch {
		case res.err != nil:
			h.Close()
			return nil, fmt.Errorf("start monitor %s: no report from monitor (%v): %s", cfg.ID, res.err, diagTail(cfg.Dir))
		case res.r.Error != "":
			h.Close()
			return nil, fmt.Errorf("start %s: %w: %s", cfg.ID, ErrStartFailed, strings.TrimPrefix(res.r.Error, ErrStartFailed.Error()+": "))
		}
		h.pid = res.r.Pid
		return h, nil
	}
}

// spawn starts the monitor process and returns its handle and the read end
// of the report pipe.
func spawn(cfg Config) (*Handle, *os.File, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, nil, err
	}
	defer devnull.Close()
	diag, err := os.OpenFile(filepath.Join(cfg.Dir, diagFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	defer diag.Close()
	repR, repW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer repW.Close()

	cmd := exec.Command(cfg.MonitorPath, "run", cfg.Dir)
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, diag, diag
	cmd.ExtraFiles = []*os.File{repW} // fd 3 == reportFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		repR.Close()
		return nil, nil, err
	}
	h := &Handle{dir: cfg.Dir, monitorPid: cmd.Process.Pid, pidfd: -1, reaped: make(chan struct{})}
	// The monitor is our child and cannot be reaped before the Wait below,
	// so the pidfd names it for sure.
	if fd, err := unix.PidfdOpen(h.monitorPid, 0); err == nil {
		h.pidfd = fd
	}
	go func() {
		cmd.Wait() // reap the monitor when it ends while we still run
		close(h.reaped)
	}()
	return h, repR, nil
}

// diagTail returns the end of the monitor's own diagnostics.
func diagTail(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, diagFile))
	b = bytes.TrimSpace(b)
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	if len(b) == 0 {
		return "monitor wrote no diagnostics"
	}
	return string(b)
}

// Attach re-adopts the monitor of dir after a berthd restart. It succeeds
// when the monitor is alive or the container's exit status is recorded,
// and returns an error wrapping ErrNoMonitor when neither holds (the
// monitor was killed, or never started); the runtime then still knows the
// container, and Delete cleans it up.
func Attach(dir string) (*Handle, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", dir, err)
	}
	h := &Handle{dir: dir, pidfd: -1}
	h.pid, _ = readPid(filepath.Join(dir, containerPid))
	mpid, perr := readPid(filepath.Join(dir, monitorPidFile))
	if perr == nil {
		h.monitorPid = mpid
		if fd, err := unix.PidfdOpen(mpid, 0); err == nil {
			// Checked after opening, so the pidfd names the process checked.
			if isMonitorOf(mpid, dir) {
				h.pidfd = fd
			} else {
				unix.Close(fd)
				h.monitorPid = 0
			}
		} else if !errors.Is(err, unix.ESRCH) && isMonitorOf(mpid, dir) {
			// No pidfd support: fall back to polling in Wait.
		} else {
			h.monitorPid = 0
		}
	}
	if _, ok := h.Exited(); ok || h.monitorAlive() {
		return h, nil
	}
	return nil, fmt.Errorf("attach %s: %w", dir, ErrNoMonitor)
}

// isMonitorOf reports whether pid is a live (not zombie) berth-monitor
// running dir.
func isMonitorOf(pid int, dir string) bool {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) != 3 || args[1] != "run" || args[2] != dir {
		return false
	}
	return !isZombie(pid)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// Dir is the monitor directory.
func (h *Handle) Dir() string { return h.dir }

// Pid is the container init's pid; 0 when it is not known (Attach to a
// monitor that had not started the container yet).
func (h *Handle) Pid() int { return h.pid }

// MonitorPid is the monitor's pid; 0 when no monitor was found by Attach.
func (h *Handle) MonitorPid() int { return h.monitorPid }

// monitorAlive reports whether the monitor process still runs.
func (h *Handle) monitorAlive() bool {
	if h.monitorPid == 0 {
		return false
	}
	if h.reaped != nil {
		select {
		case <-h.reaped:
			return false
		default:
		}
	}
	h.mu.Lock()
	fd := h.pidfd
	h.mu.Unlock()
	if fd >= 0 {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n == 0
	}
	return isMonitorOf(h.monitorPid, h.dir)
}

// Exited returns the container's exit status without blocking; ok is false
// while it runs (or when its status is unreadable).
func (h *Handle) Exited() (ExitStatus, bool) {
	st, ok, err := readExit(h.dir)
	return st, ok && err == nil
}

// pollInterval is how often Wait looks when it has no pidfd.
const pollInterval = 100 * time.Millisecond

// Wait blocks until the container has exited and its monitor is gone, and
// returns the recorded exit status. It waits on a pidfd of the monitor and
// polls only when the kernel has none. It returns ctx.Err() when ctx ends
// first, and an error wrapping ErrMonitorLost when the monitor ended
// without recording a status. Wait may be called any number of times, from
// any goroutine.
func (h *Handle) Wait(ctx context.Context) (ExitStatus, error) {
	h.mu.Lock()
	fd := h.pidfd
	h.mu.Unlock()
	var err error
	switch {
	case h.monitorPid == 0:
	case fd >= 0:
		err = waitPidfd(ctx, fd)
	default:
		err = h.pollGone(ctx)
	}
	if err != nil {
		return ExitStatus{}, err
	}
	st, ok, rerr := readExit(h.dir)
	if rerr != nil {
		return ExitStatus{}, fmt.Errorf("wait %s: %w", h.dir, rerr)
	}
	if !ok {
		return ExitStatus{}, fmt.Errorf("wait %s: %w", h.dir, ErrMonitorLost)
	}
	return st, nil
}

func (h *Handle) pollGone(ctx context.Context) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for h.monitorAlive() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// waitPidfd blocks until the process of pidfd exits or ctx ends.
func waitPidfd(ctx context.Context, pidfd int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("wait: eventfd: %w", err)
	}
	defer unix.Close(efd)
	stop := context.AfterFunc(ctx, func() {
		one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
		unix.Write(efd, one)
	})
	defer stop()
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}, {Fd: int32(efd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait: poll: %w", err)
		}
		if fds[0].Revents != 0 {
			return nil
		}
		if fds[1].Revents != 0 {
			return ctx.Err()
		}
	}
}

// Close releases the handle's pidfd. It does not touch the monitor or the
// container. Call it after every Wait has returned; calling it twice is
// safe.
func (h *Handle) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	if h.pidfd >= 0 {
		err := unix.Close(h.pidfd)
		h.pidfd = -1
		return err
	}
	return nil
}
