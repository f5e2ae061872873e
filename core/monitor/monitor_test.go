package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-io/berth/core/monitor"
	"github.com/berth-io/berth/core/oci"
	"github.com/berth-io/berth/core/oci/ocitest"
	"golang.org/x/sys/unix"
)

// monitorBin is the berth-monitor binary built for this test run.
var monitorBin string

// startEnv makes the test binary a short-lived starter: it calls Start with
// the Config in the variable, prints the pids and exits (see TestAttach).
const startEnv = "BERTH_MONITOR_TEST_START"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(startEnv); cfg != "" {
		os.Exit(starter(cfg))
	}
	dir, err := os.MkdirTemp("", "berth-monitor-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	monitorBin = filepath.Join(dir, "berth-monitor")
	build := exec.Command("go", "build", "-o", monitorBin, "github.com/berth-io/berth/cmd/berth-monitor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build berth-monitor: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func starter(cfgJSON string) int {
	var cfg monitor.Config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := monitor.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(h.Pid(), h.MonitorPid())
	return 0 // exits without waiting: the monitor is orphaned
}

// setup returns a Config for a new busybox container running args.
func setup(t *testing.T, args ...string) (monitor.Config, *oci.Runtime) {
	t.Helper()
	ocitest.NeedRoot(t)
	rt := ocitest.Runtime(t)
	id := ocitest.ID(t)
	cfg := monitor.Config{
		ID:          id,
		Bundle:      ocitest.Bundle(t, id, nil, args...),
		Dir:         filepath.Join(t.TempDir(), "mon"),
		RuntimePath: rt.Path,
		RuntimeRoot: rt.Root,
		MonitorPath: monitorBin,
	}
	return cfg, rt
}

func start(t *testing.T, cfg monitor.Config) *monitor.Handle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := monitor.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if h.Pid() <= 0 || h.MonitorPid() <= 0 {
		t.Fatalf("pids = %d, %d", h.Pid(), h.MonitorPid())
	}
	return h
}

func wait(t *testing.T, h *monitor.Handle, d time.Duration) monitor.ExitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	st, err := h.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return st
}

func readAll(t *testing.T, dir string) []monitor.LogLine {
	t.Helper()
	var lines []monitor.LogLine
	err := monitor.ReadLogs(context.Background(), dir, -1, false, func(l monitor.LogLine) error {
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// waitForLine follows the log until a line with text appears (10s at most).
func waitForLine(t *testing.T, dir, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	found := errors.New("found")
	err := monitor.ReadLogs(ctx, dir, -1, true, func(l monitor.LogLine) error {
		if l.Text == text {
			return found
		}
		return nil
	})
	if err != found {
		t.Fatalf("line %q not logged within 10s (err %v)", text, err)
	}
}

func TestExitCodeAndLogs(t *testing.T) {
	cfg, rt := setup(t, "/bin/sh", "-c", "echo to-out; echo to-err >&2; exit 3")
	before := time.Now()
	h := start(t, cfg)
	st := wait(t, h, 20*time.Second)
	if st.Code != 3 || st.Signal != "" || st.At.Before(before) {
		t.Errorf("exit = %+v", st)
	}
	if st2, ok := h.Exited(); !ok || st2 != st {
		t.Errorf("Exited = %+v, %v", st2, ok)
	}
	lines := readAll(t, cfg.Dir)
	got := map[string]string{}
	for _, l := range lines {
		got[l.Stream] = l.Text
		if l.Time.Before(before) || l.Time.After(time.Now()) {
			t.Errorf("line %+v time outside the test", l)
		}
	}
	if len(lines) != 2 || got["stdout"] != "to-out" || got["stderr"] != "to-err" {
		t.Errorf("lines = %+v", lines)
	}
	raw, err := os.ReadFile(filepath.Join(cfg.Dir, "log", "current.log"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (stdout|stderr) to-(out|err)$`)
	for _, l := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if !re.MatchString(l) {
			t.Errorf("log line %q does not match %s", l, re)
		}
	}
	// The container stays known to the runtime, stopped, until deleted.
	if s, err := rt.State(context.Background(), cfg.ID); err != nil || s.Status != "stopped" {
		t.Errorf("runtime state = %+v, %v", s, err)
	}
}

func TestKilledBySignal(t *testing.T) {
	cfg, rt := setup(t, "/bin/sleep", "600")
	h := start(t, cfg)
	if err := rt.Kill(context.Background(), cfg.ID, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	st := wait(t, h, 10*time.Second)
	if st.Code != 137 || st.Signal != "SIGKILL" {
		t.Errorf("exit = %+v, want 137 SIGKILL", st)
	}
}

// TestIgnoresSIGTERM: a container ignoring SIGTERM outlives it, and the
// caller's SIGKILL after a deadline ends it. It also measures the
// monitor's memory while it holds a running container.
func TestIgnoresSIGTERM(t *testing.T) {
	cfg, rt := setup(t, "/bin/sh", "-c", `trap "" TERM; echo ready; while :; do sleep 1; done`)
	h := start(t, cfg)
	waitForLine(t, cfg.Dir, "ready")
	if rss := vmRSS(t, h.MonitorPid()); rss != "" {
		t.Logf("monitor VmRSS while the container runs: %s", rss)
	}
	ctx := context.Background()
	if err := rt.Kill(ctx, cfg.ID, syscall.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
	grace, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := h.Wait(grace); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait after SIGTERM = %v, want the grace deadline", err)
	}
	if _, ok := h.Exited(); ok {
		t.Fatal("exited after an ignored SIGTERM")
	}
	if err := rt.Kill(ctx, cfg.ID, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, h, 10*time.Second); st.Signal != "SIGKILL" {
		t.Errorf("exit = %+v", st)
	}
}

func vmRSS(t *testing.T, pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Errorf("read monitor status: %v", err)
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestLogRotation(t *testing.T) {
	const n = 200
	cfg, _ := setup(t, "/bin/sh", "-c", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do printf "%%05d %%0990d\n" $i 0; i=$((i+1)); done`, n))
	cfg.LogMaxSize = 20000 // about 19 lines a file
	cfg.LogMaxFiles = 3
	h := start(t, cfg)
	if st := wait(t, h, 20*time.Second); st.Code != 0 {
		t.Fatalf("exit = %+v", st)
	}
	ents, err := os.ReadDir(filepath.Join(cfg.Dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		fi, _ := e.Info()
		if fi.Size() > cfg.LogMaxSize {
			t.Errorf("%s is %d bytes, over %d", e.Name(), fi.Size(), cfg.LogMaxSize)
		}
	}
	if strings.Join(names, ",") != "current.log,current.log.1,current.log.2" {
		t.Fatalf("log files = %v", names)
	}
	lines := readAll(t, cfg.Dir)
	if len(lines) < 40 || len(lines) >= n {
		t.Fatalf("%d lines kept", len(lines))
	}
	first := n - len(lines)
	for i, l := range lines {
		if want := fmt.Sprintf("%05d ", first+i); !strings.HasPrefix(l.Text, want) || len(l.Text) != 996 {
			t.Fatalf("line %d = %.10q (len %d), want prefix %q: not in order", i, l.Text, len(l.Text), want)
		}
	}
	// tail picks the newest lines across files.
	var tail []string
	monitor.ReadLogs(context.Background(), cfg.Dir, 3, false, func(l monitor.LogLine) error {
		tail = append(tail, l.Text[:5])
		return nil
	})
	if strings.Join(tail, ",") != "00197,00198,00199" {
		t.Errorf("tail 3 = %v", tail)
	}
}

func TestLongAndPartialLines(t *testing.T) {
	// 40000 characters and no final newline: split at 16 KiB, the rest
	// flushed when the container exits.
	cfg, _ := setup(t, "/bin/sh", "-c", `printf "%040000d" 0`)
	h := start(t, cfg)
	wait(t, h, 20*time.Second)
	var lens []int
	for _, l := range readAll(t, cfg.Dir) {
		lens = append(lens, len(l.Text))
	}
	if fmt.Sprint(lens) != fmt.Sprint([]int{monitor.MaxLineSize, monitor.MaxLineSize, 40000 - 2*monitor.MaxLineSize}) {
		t.Errorf("line lengths = %v", lens)
	}
}

func TestReadLogsFollow(t *testing.T) {
	cfg, _ := setup(t, "/bin/sh", "-c", `echo one; while [ ! -e /go ]; do sleep 0.05; done; echo two`)
	h := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	err := monitor.ReadLogs(ctx, cfg.Dir, -1, true, func(l monitor.LogLine) error {
		got = append(got, l.Text)
		if l.Text == "one" { // the container goes on once it sees /go
			return os.WriteFile(filepath.Join(cfg.Bundle, "rootfs", "go"), nil, 0o644)
		}
		return nil
	})
	if err != nil || ctx.Err() != nil {
		t.Fatalf("follow = %v (ctx %v), want nil before the deadline", err, ctx.Err())
	}
	if strings.Join(got, ",") != "one,two" {
		t.Errorf("followed %v", got)
	}
	if _, ok := h.Exited(); !ok {
		t.Error("follow ended before the container exited")
	}
}

func TestAttachAfterStarterExits(t *testing.T) {
	cfg, _ := setup(t, "/bin/sh", "-c", `echo hi; while [ ! -e /go ]; do sleep 0.05; done; exit 5`)
	b, _ := json.Marshal(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Orphans land on the nearest subreaper: be it, so the test can reap
	// the monitor after its starter exits (this host's pid 1 does not).
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), startEnv+"="+string(b))
	out, err := child.Output()
	if err != nil {
		t.Fatalf("starter: %v: %s", err, out)
	}
	var pid, mpid int
	if _, err := fmt.Sscan(string(out), &pid, &mpid); err != nil {
		t.Fatalf("starter printed %q: %v", out, err)
	}
	// The process that called Start is gone; the container is not.
	h, err := monitor.Attach(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Pid() != pid || h.MonitorPid() != mpid {
		t.Errorf("attached pids %d/%d, started %d/%d", h.Pid(), h.MonitorPid(), pid, mpid)
	}
	if _, ok := h.Exited(); ok {
		t.Fatal("exited before it was told to")
	}
	waitForLine(t, cfg.Dir, "hi")
	if err := os.WriteFile(filepath.Join(cfg.Bundle, "rootfs", "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, h, 20*time.Second); st.Code != 5 {
		t.Errorf("exit = %+v", st)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(mpid, &ws, unix.WNOHANG, nil); err != nil || ws.ExitStatus() != 0 {
		t.Errorf("reap monitor: %v, status %v", err, ws)
	}
	// After the exit, Attach still works from the recorded status.
	h2, err := monitor.Attach(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if st, ok := h2.Exited(); !ok || st.Code != 5 {
		t.Errorf("re-attached exit = %+v, %v", st, ok)
	}
	if _, err := monitor.Attach(t.TempDir()); !errors.Is(err, monitor.ErrNoMonitor) {
		t.Errorf("attach to an empty dir = %v, want ErrNoMonitor", err)
	}
}

func TestStartFailure(t *testing.T) {
	cfg, rt := setup(t, "/no/such/binary")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := monitor.Start(ctx, cfg)
	if !errors.Is(err, monitor.ErrStartFailed) || !strings.Contains(err.Error(), "/no/such/binary") {
		t.Fatalf("start = %v, want ErrStartFailed with the runtime's message", err)
	}
	t.Logf("start said: %v", err)
	if _, err := rt.State(ctx, cfg.ID); !errors.Is(err, oci.ErrNotExist) {
		t.Errorf("runtime state after failed start = %v, want ErrNotExist", err)
	}
}
