package containers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-io/berth/core/syncbuf"
)

// stackPlaybook is one busybox container that waits until stopped. Its
// shell is the container's pid 1, which ignores an untrapped SIGTERM.
const stackPlaybook = `stack "hil" {
  container "sleeper" {
    images  = ["berth.local/busybox:1.35"]
    command = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
  }
}
`

// TestBerthdRunsAStackOnTheBoard starts berthd on the qemu-x86_64 board
// (its socketcan plugin drives the kernel's vcan0), brings a one-container
// stack up and down with the berth CLI, and checks with can-utils that the
// board's can0 is the kernel's vcan0 both ways.
func TestBerthdRunsAStackOnTheBoard(t *testing.T) {
	needRoot(t, "runs berthd and containers, creates vcan0")
	for _, p := range []string{"berthd", "berth-monitor", "berth-plugin-socketcan", "runc", "cansend"} {
		need(t, p)
	}
	board := boardFile(t)
	if _, err := os.Stat("/sys/class/net/vcan0"); err == nil && os.Getenv("BERTH_HIL") == "" {
		t.Skip("this host has a vcan0 already; the test makes its own (run it in the HIL VM: make hil)")
	}
	addVcan(t, "vcan0") // the board's can0

	// The busybox image, built here from the guest's static busybox.
	images := t.TempDir()
	run(t, need(t, "mkimage"), "-only", "busybox", "-o", images)

	d := startBerthd(t, "--board", board, "--plugin-dir", filepath.Dir(need(t, "berth-plugin-socketcan")))
	d.berth(t, "image", "import", filepath.Join(images, "busybox.tar"))
	pb := filepath.Join(t.TempDir(), "hil.hcl")
	if err := os.WriteFile(pb, []byte(stackPlaybook), 0o644); err != nil {
		t.Fatal(err)
	}
	d.berth(t, "up", pb)
	t.Cleanup(func() { _, _ = tryRun(d.berthPath, "--host", d.socket, "down", "hil") }) // if the test stops early

	ps := d.ps(t)
	if len(ps) != 1 || ps[0].Name != "sleeper" || ps[0].Stack != "hil" || ps[0].State != "running" || ps[0].PID <= 0 {
		t.Fatalf("berth ps after up = %+v, want hil/sleeper running with a pid\nberthd log:\n%s", ps, d.log.String())
	}
	pid := ps[0].PID
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "sh" {
		t.Errorf("the container's pid %d runs %q (%v), want sh", pid, comm, err)
	}

	t.Run("can0 is vcan0", func(t *testing.T) {
		// berth → plugin → vcan0: candump on the kernel interface sees it.
		dump := dumpOne(t, "vcan0")
		d.berth(t, "can", "send", "can0", "123#DEADBEEF")
		if got, want := logFrame(t, dump.wait(t)), "vcan0 123#DEADBEEF"; got != want {
			t.Errorf("candump -L vcan0 got %q after berth can send can0, want %q", got, want)
		}
		// vcan0 → plugin → berth: cansend until the dump has its one frame
		// (the dump's session may not be open when the first one is sent).
		bdump := start(t, d.berthPath, "--host", d.socket, "can", "dump", "can0", "--count", "1")
		waitFor(t, "berth can dump can0 to get a frame cansend put on vcan0", func() bool {
			if bdump.exited() {
				return true
			}
			run(t, "cansend", "vcan0", "321#CAFE")
			return false
		})
		if got, want := logFrame(t, bdump.wait(t)), "can0 321#CAFE"; got != want {
			t.Errorf("berth can dump can0 got %q after cansend vcan0, want %q", got, want)
		}
	})

	d.berth(t, "down", "hil")
	if ps := d.ps(t); len(ps) != 0 {
		t.Errorf("berth ps after down = %+v, want no running container", ps)
	}
	waitFor(t, fmt.Sprintf("the container's pid %d to end", pid), func() bool {
		return syscall.Kill(pid, 0) == syscall.ESRCH
	})
}

// boardFile returns the qemu-x86_64 board: hil.hcl puts it in the test's
// directory in the VM; on a host it is the package's parent's.
func boardFile(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"board.hcl", "../board.hcl"} {
		if _, err := os.Stat(p); err == nil {
			abs, err := filepath.Abs(p)
			if err != nil {
				t.Fatal(err)
			}
			return abs
		}
	}
	t.Fatal("no board.hcl here or in ..: hil.hcl ships board-support/qemu-x86_64/board.hcl")
	return ""
}

// daemon is a berthd under test with its own state and run dirs.
type daemon struct {
	proc      *background
	log       *syncbuf.Buffer
	socket    string
	berthPath string
	args      []string // berthd's command line, for a restart
}

// startBerthd starts berthd (runc, its own dirs and cgroup) with more
// flags, and waits until its API answers. It is stopped at cleanup.
func startBerthd(t *testing.T, args ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{socket: filepath.Join(dir, "run", "berthd.sock"), berthPath: need(t, "berth")}
	d.args = append([]string{"--state-dir", filepath.Join(dir, "state"), "--run-dir", filepath.Join(dir, "run"),
		"--runtime", "runc", "--cgroup-parent", "berth-hil-" + strconv.Itoa(os.Getpid()), "--log-level", "debug"}, args...)
	d.start(t)
	t.Cleanup(func() {
		if d.proc.exited() {
			return
		}
		_ = d.proc.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.proc.done:
			d.proc.done <- nil
		case <-time.After(cmdTimeout):
			// SIGQUIT makes the Go runtime print every goroutine's stack.
			_ = d.proc.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-d.proc.done:
				d.proc.done <- nil
			case <-time.After(5 * time.Second):
			}
			t.Errorf("berthd did not stop within %v of SIGTERM; its log and goroutines:\n%s", cmdTimeout, d.log.String())
		}
	})
	return d
}

// start runs berthd with d.args and waits until its API answers.
func (d *daemon) start(t *testing.T) {
	t.Helper()
	d.proc = start(t, need(t, "berthd"), d.args...)
	d.log = &d.proc.out
	waitFor(t, "berthd's API to answer", func() bool {
		if d.proc.exited() {
			t.Fatalf("berthd exited at start:\n%s", d.log.String())
		}
		_, err := tryRun(d.berthPath, "--host", d.socket, "ps")
		return err == nil
	})
}

// crashAndRestart kills berthd with SIGKILL, as a crash would, and starts
// it again on the same state: it must adopt what the first one ran.
func (d *daemon) crashAndRestart(t *testing.T) {
	t.Helper()
	_ = d.proc.cmd.Process.Kill()
	select {
	case <-d.proc.done:
		d.proc.done <- nil
	case <-time.After(cmdTimeout):
		t.Fatalf("berthd still runs %v after SIGKILL", cmdTimeout)
	}
	d.start(t)
}

// berth runs the CLI against d and returns its output; a failure fails
// the test with berthd's log.
func (d *daemon) berth(t *testing.T, args ...string) string {
	t.Helper()
	out, err := tryRun(d.berthPath, append([]string{"--host", d.socket}, args...)...)
	if err != nil {
		t.Fatalf("berth %s: %v\n%s\nberthd log:\n%s", strings.Join(args, " "), err, out, d.log.String())
	}
	return out
}

// psRow is the part of `berth ps --json` these tests read.
type psRow struct {
	Name, Stack, State string
	PID                int `json:"pid"`
}

// ps returns the running containers, as `berth ps --json` lists them.
func (d *daemon) ps(t *testing.T) []psRow {
	t.Helper()
	out := d.berth(t, "ps", "--json")
	var rows []psRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("berth ps --json: %v\n%s", err, out)
	}
	return rows
}
