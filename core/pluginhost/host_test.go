package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-io/berth/core/board"
	"github.com/berth-io/berth/core/syncbuf"
	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/sdk"
)

// loopbackBin is devices/examples/loopback built as a real binary by
// TestMain; loopbackSum is its SHA-256.
var loopbackBin, loopbackSum string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-pluginhost-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	loopbackBin = filepath.Join(dir, "loopback")
	cmd := exec.Command("go", "build", "-o", loopbackBin, "../../devices/examples/loopback")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		fmt.Fprintf(os.Stderr, "go build ../../devices/examples/loopback: %v\n%s", err, out)
		os.Exit(1)
	}
	if loopbackSum, err = sdk.FileSHA256(loopbackBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// loopBoard is a board driving one loopback bus as device can0. Line
// numbers matter: tests assert diagnostics at them.
//
//	1 board "test" {
//	2   plugin "loop" {
//	3     path   = "<path>"
//	4     sha256 = "<sum>"
//	5     config {
//	6       <config>
//	7     }
//	8   }
//	9   device "can0" {
//	10    class  = "<class>"
//	11    plugin = "loop"
//	12    id     = "loop0"
//	13  }
//	14 }
func loopBoard(t *testing.T, path, sum, config, class string) *board.Board {
	t.Helper()
	src := fmt.Sprintf(`board "test" {
  plugin "loop" {
    path   = %q
    sha256 = %q
    config {
      %s
    }
  }
  device "can0" {
    class  = %q
    plugin = "loop"
    id     = "loop0"
  }
}
`, path, sum, config, class)
	b, diags := board.Parse([]byte(src), filepath.Join(t.TempDir(), "board.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return b
}

func start(t *testing.T, b *board.Board, opts ...Option) *Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := Start(ctx, b, opts...)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// roundTrip sends a frame on a and checks b receives it.
func roundTrip(t *testing.T, ctx context.Context, a, b can.Bus, id uint32) {
	t.Helper()
	st, err := b.Receive(ctx)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	want := can.Frame{ID: id, Data: []byte{0xde, 0xad, byte(id)}}
	if err := a.Send(ctx, want); err != nil {
		t.Fatalf("send: %v", err)
	}
	got, err := st.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	if len(got) != 1 || got[0].ID != id || !bytes.Equal(got[0].Data, want.Data) || got[0].Timestamp.IsZero() {
		t.Fatalf("received %+v, want one frame %+v with a timestamp", got, want)
	}
}

func TestStartOpenAndDevices(t *testing.T) {
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: levelTrace}))
	b := loopBoard(t, loopbackBin, strings.ToUpper(loopbackSum), `device = "loop0"`, "can")
	h := start(t, b, WithLogger(log))
	ctx := testCtx(t, 15*time.Second)

	if err := h.Wait(ctx, "can0"); err != nil {
		t.Fatalf("wait: %v", err)
	}
	a, err := h.Open(ctx, "can0")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer a.Close()
	c, err := h.Open(ctx, "can0")
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	defer c.Close()
	roundTrip(t, ctx, a, c, 0x123)
	roundTrip(t, ctx, c, a, 0x456)

	// Devices shows the device healthy, and Counters asks the plugin,
	// which counted the two frames sent.
	ds := h.Devices()
	if len(ds) != 1 {
		t.Fatalf("Devices() = %+v, want one", ds)
	}
	st := ds[0]
	if c := h.Counters(ctx); c["can0"]["tx_frames"] != 2 {
		t.Errorf("Counters() = %v, want can0 with tx_frames 2", c)
	}
	if st.Name != "can0" || st.ID != "loop0" || st.Plugin != "loop" || st.Class != devices.ClassCAN ||
		!st.Available || st.Health != devices.HealthHealthy || st.Restarts != 0 || st.Attributes["mode"] == "" {
		t.Errorf("status %+v", st)
	}

	// The plugin's own log line reaches the host's log under its name.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "msg=configured"); {
		if time.Now().After(deadline) {
			t.Fatalf("plugin log line missing from host log:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "msg=configured") &&
			(!strings.Contains(line, "plugin=loop") || !strings.Contains(line, "device=loop0") || !strings.Contains(line, "level=INFO")) {
			t.Errorf("plugin log line lacks plugin name, level or fields: %s", line)
		}
	}

	// Errors of the host itself.
	if _, err := h.Open(ctx, "can9"); !errors.Is(err, devices.ErrUnknownDevice) || !strings.Contains(err.Error(), "can0") {
		t.Errorf("open unknown device: %v, want ErrUnknownDevice listing can0", err)
	}
	if err := a.Send(ctx, can.Frame{ID: 0x800}); !errors.Is(err, can.ErrInvalidID) || errors.Is(err, devices.ErrUnavailable) {
		t.Errorf("send of a bad frame: %v, want ErrInvalidID and not devices.ErrUnavailable", err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := h.Open(ctx, "can0"); !errors.Is(err, devices.ErrClosed) {
		t.Errorf("open after close: %v, want ErrClosed", err)
	}
	if err := h.Wait(ctx, "can0"); !errors.Is(err, devices.ErrClosed) {
		t.Errorf("wait after close: %v, want ErrClosed", err)
	}
	if err := a.Send(ctx, can.Frame{ID: 1}); !errors.Is(err, devices.ErrUnavailable) {
		t.Errorf("send after close: %v, want devices.ErrUnavailable", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("closing a bus after the host closed: %v", err)
	}
}

// TestStartRefuses checks that each board mistake only the plugin can
// reveal is refused at Start with an error naming the board line.
func TestStartRefuses(t *testing.T) {
	wrong := strings.Repeat("0", 64)
	cases := []struct {
		name             string
		path, sum, class string
		config           string
		sentinel         error
		mention          []string // beside the board file
		line, col        int
	}{
		{name: "wrong sha256", path: loopbackBin, sum: wrong, class: "can", config: `device = "loop0"`,
			sentinel: devices.ErrChecksumMismatch, mention: []string{loopbackBin, wrong, loopbackSum}, line: 4, col: 14},
		{name: "binary missing", path: "berth-plugin-nope", sum: wrong, class: "can", config: `device = "loop0"`,
			sentinel: ErrPluginNotFound, mention: []string{`"berth-plugin-nope"`, "$PATH"}, line: 3, col: 14},
		{name: "relative binary missing", path: "plugins/loopback", sum: wrong, class: "can", config: `device = "loop0"`,
			sentinel: ErrPluginNotFound, mention: []string{"plugins/loopback"}, line: 3, col: 14},
		{name: "config of the wrong type", path: loopbackBin, sum: loopbackSum, class: "can", config: `fd = "maybe"`,
			sentinel: devices.ErrInvalidConfig, mention: []string{":6:12: Incorrect attribute value type", `"fd"`}, line: 5, col: 5},
		{name: "config attribute unknown", path: loopbackBin, sum: loopbackSum, class: "can", config: `bitrate = 500000`,
			sentinel: devices.ErrInvalidConfig, mention: []string{":6:7: Unsupported argument", "bitrate"}, line: 5, col: 5},
		{name: "config the plugin refuses", path: loopbackBin, sum: loopbackSum, class: "can", config: `device = ""`,
			sentinel: devices.ErrInvalidConfig, mention: []string{"device must not be empty"}, line: 5, col: 5},
		{name: "class the plugin does not drive", path: loopbackBin, sum: loopbackSum, class: "i2c", config: `device = "loop0"`,
			sentinel: ErrClassNotDriven, mention: []string{`device "can0" is i2c`, "[can]"}, line: 10, col: 14},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := loopBoard(t, c.path, c.sum, c.config, c.class)
			h, err := Start(testCtx(t, 20*time.Second), b, WithPluginDirs(t.TempDir()))
			if err == nil {
				h.Close()
				t.Fatal("start succeeded")
			}
			if !errors.Is(err, c.sentinel) {
				t.Errorf("error %v does not wrap %v", err, c.sentinel)
			}
			var pe *PluginError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *PluginError", err)
			}
			if pe.Plugin != "loop" || pe.Subject.Filename != b.File || pe.Subject.Start.Line != c.line || pe.Subject.Start.Column != c.col {
				t.Errorf("error points at %s %v, want %s:%d:%d", pe.Plugin, pe.Subject, b.File, c.line, c.col)
			}
			msg := err.Error()
			for _, m := range append(c.mention, fmt.Sprintf("%s:%d:%d: plugin \"loop\"", b.File, c.line, c.col)) {
				if !strings.Contains(msg, m) {
					t.Errorf("error does not mention %q:\n%s", m, msg)
				}
			}
			if d := pe.Diagnostics(); !d.HasErrors() || d[0].Subject == nil || d[0].Subject.Filename != b.File {
				t.Errorf("Diagnostics() = %v, want errors pointing into the board file", d)
			}
			if kids := pluginChildren(t); len(kids) != 0 {
				t.Errorf("plugin processes left running after a refused start: %v", kids)
			}
		})
	}
}

// pluginChildren returns the pids of this process's live child processes
// (the tests start no children but plugins).
func pluginChildren(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parens.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == me {
			out = append(out, pid)
		}
	}
	return out
}

// onePlugin returns the pid of the one plugin process running.
func onePlugin(t *testing.T) int {
	t.Helper()
	kids := pluginChildren(t)
	if len(kids) != 1 {
		t.Fatalf("plugin processes %v, want exactly one", kids)
	}
	return kids[0]
}

// TestCrashAndRestart kills the plugin with SIGKILL during a stream: the
// stream and the open buses fail with devices.ErrUnavailable, Open does too until
// the host has restarted the plugin, and then everything works again
// without a new host.
func TestCrashAndRestart(t *testing.T) {
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	b := loopBoard(t, loopbackBin, loopbackSum, `device = "loop0"`, "can")
	// The first restart waits 500ms, so Open surely sees the plugin down.
	h := start(t, b, WithLogger(log), WithBackoff(500*time.Millisecond, 2*time.Second))
	ctx := testCtx(t, 20*time.Second)

	a, err := h.Open(ctx, "can0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	r, err := h.Open(ctx, "can0")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	roundTrip(t, ctx, a, r, 0x10)
	st, err := r.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	streamErr := make(chan error, 1)
	go func() {
		for {
			if _, err := st.Recv(); err != nil {
				streamErr <- err
				return
			}
		}
	}()

	pid := onePlugin(t)
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-streamErr:
		if !errors.Is(err, devices.ErrUnavailable) {
			t.Fatalf("stream ended with %v, want devices.ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end within 5s of the plugin's death")
	}
	if err := a.Send(ctx, can.Frame{ID: 0x11}); !errors.Is(err, devices.ErrUnavailable) {
		t.Errorf("send on a bus of the dead plugin: %v, want devices.ErrUnavailable", err)
	}
	_, err = h.Open(ctx, "can0")
	if !errors.Is(err, devices.ErrUnavailable) {
		t.Fatalf("open while the plugin is down: %v, want devices.ErrUnavailable", err)
	}
	if ds := h.Devices(); ds[0].Available || ds[0].Health != devices.HealthUnhealthy || !strings.Contains(ds[0].Reason, "plugin loop is down") {
		t.Errorf("status while down: %+v", ds[0])
	}

	// The host restarts it; Wait says when.
	if err := h.Wait(testCtx(t, 10*time.Second), "can0"); err != nil {
		t.Fatalf("plugin not back: %v", err)
	}
	back := time.Since(killed)
	t.Logf("plugin back %v after SIGKILL (first back-off 500ms)", back.Round(time.Millisecond))
	if back < 500*time.Millisecond {
		t.Errorf("plugin back after %v, before the 500ms back-off", back)
	}
	a2, err := h.Open(ctx, "can0")
	if err != nil {
		t.Fatalf("open after restart: %v", err)
	}
	defer a2.Close()
	r2, err := h.Open(ctx, "can0")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	roundTrip(t, ctx, a2, r2, 0x12)
	if pid2 := onePlugin(t); pid2 == pid {
		t.Errorf("plugin pid %d unchanged after restart", pid)
	}
	if ds := h.Devices(); !ds[0].Available || ds[0].Restarts != 1 || ds[0].Health != devices.HealthHealthy {
		t.Errorf("status after restart: %+v", ds[0])
	}
	// The dead buses close cleanly.
	if err := a.Close(); err != nil {
		t.Errorf("close of a dead bus: %v", err)
	}
	if !strings.Contains(logs.String(), "plugin down; restarting") {
		t.Errorf("restart not logged:\n%s", logs)
	}
}

// TestKeepsCrashing makes every restart fail: the host keeps trying with
// bounded back-off (no busy loop), reports the device unhealthy with the
// reason, and recovers as soon as the plugin can start again.
func TestKeepsCrashing(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken")
	wrapper := filepath.Join(dir, "loop-wrapper")
	script := fmt.Sprintf("#!/bin/sh\nif [ -e %q ]; then echo 'cannot start' >&2; exit 3; fi\nexec %q \"$@\"\n", broken, loopbackBin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	src := `board "test" {
  plugin "loop" {
    path = "loop-wrapper"
  }
  device "loop0" {
    class  = "can"
    plugin = "loop"
  }
}
`
	b, diags := board.Parse([]byte(src), filepath.Join(dir, "board.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	const minDelay, maxDelay = 20 * time.Millisecond, 200 * time.Millisecond
	h := start(t, b, WithLogger(log), WithPluginDirs(dir), WithBackoff(minDelay, maxDelay))

	if err := os.WriteFile(broken, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(onePlugin(t), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Watch it fail for a while.
	const window = 1500 * time.Millisecond
	began := time.Now()
	for time.Since(began) < window {
		time.Sleep(50 * time.Millisecond)
		if ds := h.Devices(); ds[0].Available {
			t.Fatalf("device available while its plugin cannot start: %+v", ds[0])
		}
	}
	st := h.Devices()[0]
	if st.Health != devices.HealthUnhealthy || !strings.Contains(st.Reason, "restart") {
		t.Errorf("status of a crash-looping plugin: %+v", st)
	}
	failures := strings.Count(logs.String(), "plugin restart failed")
	// 20+40+80+160 ms, then 200ms each: about 10 attempts in 1.5s. A busy
	// loop would make hundreds.
	if failures < 3 || failures > 15 {
		t.Errorf("%d failed restarts in %v with back-off %v..%v; want about 10", failures, window, minDelay, maxDelay)
	}
	if _, err := h.Open(testCtx(t, time.Second), "loop0"); !errors.Is(err, devices.ErrUnavailable) {
		t.Errorf("open of a crash-looping plugin's device: %v, want devices.ErrUnavailable", err)
	}

	// Fix it: the host brings it back within a back-off period or two.
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 10*time.Second)
	if err := h.Wait(ctx, "loop0"); err != nil {
		t.Fatalf("plugin not back after the fix: %v", err)
	}
	bus, err := h.Open(ctx, "loop0")
	if err != nil {
		t.Fatal(err)
	}
	bus.Close()
}
