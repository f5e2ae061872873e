package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/oci"
)

// startTimeout bounds berthd's start, runtime probe included.
const startTimeout = 30 * time.Second

// bench is one benchmark run: its berthd, its directories and the
// baseline's bundles. cleanup removes all of it.
type bench struct {
	opts     options
	bin      string // absolute -bin
	tmp      string // everything the bench writes lives under it
	state    string // berthd --state-dir
	runDir   string // berthd --run-dir
	sock     string
	cgroup   string // berthd --cgroup-parent; the baseline runs beneath it too
	playbook string // the generated playbook file

	daemon     *exec.Cmd
	daemonDone chan struct{} // closed when berthd has exited
	daemonErr  error         // berthd's exit, once daemonDone is closed
	stackUp    bool          // a `berth up` may have left containers

	rt     *oci.Runtime      // the runtime berthd selected, for the baseline
	direct []directContainer // the baseline's bundles
}

func newBench(o options) (*bench, error) {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	b := &bench{
		opts: o, bin: bin, tmp: tmp,
		state:  filepath.Join(tmp, "state"),
		runDir: filepath.Join(tmp, "run"),
		sock:   filepath.Join(tmp, "berthd.sock"),
		cgroup: "berth-bench-" + strconv.Itoa(os.Getpid()),
	}
	b.playbook = filepath.Join(tmp, "bench.hcl")
	if err := os.WriteFile(b.playbook, []byte(playbook), 0o644); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("write playbook: %w", err)
	}
	return b, nil
}

func (b *bench) logf(format string, args ...any) { logf(format, args...) }

// logf prints a progress line on stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "berth-bench: "+format+"\n", args...)
}

// startDaemon starts berthd and waits until its socket accepts
// connections, or berthd exits, or startTimeout passes.
func (b *bench) startDaemon(ctx context.Context) error {
	logf, err := os.Create(filepath.Join(b.tmp, "berthd.log"))
	if err != nil {
		return err
	}
	defer logf.Close() // berthd holds its own copy
	// berthd runs in a network namespace of its own (unshare execs it, so
	// the pid is berthd's): at start it removes berth-named links it does
	// not know, which must never be another berthd's on this host.
	b.daemon = exec.Command("unshare", "--net", "--", filepath.Join(b.bin, "berthd"),
		"--state-dir", b.state, "--run-dir", b.runDir, "--socket", b.sock,
		"--runtime", b.opts.runtime, "--cgroup-parent", b.cgroup, "--log-level", "warn",
		"--board", b.opts.board, "--plugin-dir", b.bin)
	b.daemon.Stdout, b.daemon.Stderr = logf, logf
	if err := b.daemon.Start(); err != nil {
		return fmt.Errorf("start berthd: %w", err)
	}
	b.daemonDone = make(chan struct{})
	go func() { b.daemonErr = b.daemon.Wait(); close(b.daemonDone) }()

	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.Dial("unix", b.sock); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-b.daemonDone:
			return fmt.Errorf("berthd exited at start (%v): %s", b.daemonErr, b.daemonLog())
		case <-deadline.C:
			return fmt.Errorf("berthd not serving on %s after %v: %s", b.sock, startTimeout, b.daemonLog())
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// stopDaemon stops berthd with SIGTERM, or SIGKILL when it has not exited
// after 10 s. The containers keep running. Stopping a stopped berthd is a
// no-op.
func (b *bench) stopDaemon() {
	if b.daemonDone == nil {
		return
	}
	b.daemon.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.daemonDone:
	case <-time.After(10 * time.Second):
		b.daemon.Process.Kill()
		<-b.daemonDone
	}
	b.daemonDone = nil
}

// daemonLog is the tail of berthd's log, for error messages.
func (b *bench) daemonLog() string {
	out, _ := os.ReadFile(filepath.Join(b.tmp, "berthd.log"))
	s := strings.TrimSpace(string(out))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// berth runs the CLI against the bench's berthd and returns its stdout.
func (b *bench) berth(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(b.bin, "berth"), append([]string{"--host", b.sock}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("berth %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// upBerth brings the stack up and returns how long it took from the start
// of the `berth up` process to its exit, which is when every container has
// started. It then checks, untimed, that all are running.
func (b *bench) upBerth(ctx context.Context) (time.Duration, error) {
	b.stackUp = true
	start := time.Now()
	if _, err := b.berth(ctx, "up", b.playbook); err != nil {
		return 0, err
	}
	took := time.Since(start)
	out, err := b.berth(ctx, "ps", "-a", "--json")
	if err != nil {
		return 0, err
	}
	var rows []struct{ Stack, Name, State string }
	if err := json.Unmarshal(out, &rows); err != nil {
		return 0, fmt.Errorf("berth ps --json: %w", err)
	}
	running := 0
	var bad []string
	for _, r := range rows {
		if r.Stack != stackName {
			continue
		}
		if r.State == "running" {
			running++
		} else {
			bad = append(bad, r.Name+" "+r.State)
		}
	}
	if running != len(containers) {
		return 0, fmt.Errorf("after berth up: %d of %d containers running (%s)", running, len(containers), strings.Join(bad, ", "))
	}
	return took, nil
}

func (b *bench) downBerth(ctx context.Context) error {
	if _, err := b.berth(ctx, "down", stackName); err != nil {
		return err
	}
	b.stackUp = false
	return nil
}

// hostMachine describes the host.
func hostMachine() machine {
	m := machine{CPU: cpuModel(), Cores: runtime.NumCPU()}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	return m
}

// ociRuntime adds the OCI runtime berthd selected to m, and sets b.rt to that
// runtime for the baseline.
func (b *bench) ociRuntime(ctx context.Context, m *machine) error {
	out, err := b.berth(ctx, "version", "--json")
	if err != nil {
		return err
	}
	var v struct {
		Server *struct{ Runtime string } `json:"server"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.Server == nil {
		return fmt.Errorf("berth version --json: no server runtime in %q (%v)", out, err)
	}
	name, _, _ := strings.Cut(v.Server.Runtime, " ") // "runc 1.1.5"
	b.rt, err = oci.New(name, oci.WithRoot(filepath.Join(b.tmp, "direct", "runtime")))
	if err != nil {
		return err
	}
	m.Runtime = b.rt.Name
	m.RuntimeVersion, err = b.rt.Version(ctx)
	return err
}

// cleanup undoes everything the bench did, best effort, and returns what
// it could not undo: the stack, the baseline's containers, berthd, the
// monitors and containers it left, mounts, cgroups, the temp dir.
func (b *bench) cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	if b.stackUp && b.daemonDone != nil {
		if err := b.downBerth(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if b.rt != nil {
		errs = append(errs, b.downDirect(ctx))
	}
	b.stopDaemon()
	// Containers outlive berthd: remove any a failed run left behind.
	if b.rt != nil {
		berthRT := *b.rt
		berthRT.Root = filepath.Join(b.runDir, "runtime")
		if list, err := berthRT.List(ctx); err == nil {
			for _, c := range list {
				errs = append(errs, berthRT.Delete(ctx, c.ID, true))
			}
		}
	}
	killMonitors(b.state)
	errs = append(errs, unmountUnder(b.tmp), removeCgroups(b.cgroup), os.RemoveAll(b.tmp))
	return errors.Join(errs...)
}

// killMonitors kills the berth-monitor processes whose directory is under
// state (`berth-monitor run DIR`).
func killMonitors(state string) {
	for _, pid := range monitorPids(state) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		// dir, from os.MkdirTemp, has no character mountinfo escapes.
		if strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	var errs []error
	for i := len(points) - 1; i >= 0; i-- { // mountinfo lists parents first
		if err := unix.Unmount(points[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", points[i], err))
		}
	}
	return errors.Join(errs...)
}

// removeCgroups removes the (now empty) cgroup directories named parent
// and below in every hierarchy under /sys/fs/cgroup, deepest first.
func removeCgroups(parent string) error {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	var errs []error
	for _, root := range roots {
		top := filepath.Join(root, parent)
		var dirs []string
		filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove cgroup: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}
