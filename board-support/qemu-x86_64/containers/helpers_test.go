package containers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/core/syncbuf"
)

// cmdTimeout bounds one command; TCG makes the guest slow.
const cmdTimeout = 60 * time.Second

// missing skips the test on a host that lacks what the HIL VM provides,
// and fails it inside the VM, where the lack is a harness bug.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("BERTH_HIL") != "" {
		t.Fatalf("in the HIL VM: %s", msg)
	}
	t.Skipf("%s (run it in the HIL VM: make hil)", msg)
}

func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root: %s", why)
	}
}

// need returns the path of program name, which the HIL VM provides (the
// base image's tools, or hil.hcl's programs in /hil/bin).
func need(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not in PATH: %v", name, err)
	}
	return p
}

// run runs a command and returns its combined output; it fails the test
// with that output on a non-zero exit or after cmdTimeout.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := tryRun(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// tryRun runs a command and returns its combined output and error.
func tryRun(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// background is a command running while the test does something else.
type background struct {
	cmd  *exec.Cmd
	out  syncbuf.Buffer
	done chan error
}

// start starts a command, killed at cleanup if it still runs.
func start(t *testing.T, name string, args ...string) *background {
	t.Helper()
	b := &background{cmd: exec.Command(name, args...), done: make(chan error, 1)}
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() {
		if !b.exited() {
			_ = b.cmd.Process.Kill()
			b.done <- <-b.done // for a later cleanup that waits too
		}
	})
	return b
}

// wait waits up to cmdTimeout for the command to exit and returns its
// output; it fails the test if the command fails or does not exit.
func (b *background) wait(t *testing.T) string {
	t.Helper()
	select {
	case err := <-b.done:
		b.done <- err // for cleanup
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(b.cmd.Args, " "), err, b.out.String())
		}
		return b.out.String()
	case <-time.After(cmdTimeout):
		_ = b.cmd.Process.Kill()
		err := <-b.done
		b.done <- err
		t.Fatalf("%s did not exit in %v: %v\n%s", strings.Join(b.cmd.Args, " "), cmdTimeout, err, b.out.String())
		return ""
	}
}

// exited reports whether the command has exited, without waiting.
func (b *background) exited() bool {
	select {
	case err := <-b.done:
		b.done <- err
		return true
	default:
		return false
	}
}

// addVcan creates a vcan interface with iproute2's ip and brings it up; it
// is removed at cleanup.
func addVcan(t *testing.T, name string) {
	t.Helper()
	ip := need(t, "ip")
	if out, err := tryRun(ip, "link", "add", name, "type", "vcan"); err != nil {
		if strings.Contains(out, "Unknown device type") || strings.Contains(out, "not supported") {
			missing(t, "kernel has no vcan: ip link add %s type vcan: %s", name, strings.TrimSpace(out))
		}
		t.Fatalf("ip link add %s type vcan: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := tryRun(ip, "link", "del", name); err != nil {
			t.Errorf("ip link del %s: %v\n%s", name, err, out)
		}
	})
	run(t, ip, "link", "set", name, "up")
}

// canReceivers counts the CAN_RAW receive filters registered on ifname,
// from the kernel's /proc/net/can/rcvlist_* tables.
func canReceivers(t *testing.T, ifname string) int {
	t.Helper()
	lists, _ := filepath.Glob("/proc/net/can/rcvlist_*")
	if len(lists) == 0 {
		missing(t, "no /proc/net/can/rcvlist_* (is can_raw loaded?)")
	}
	n := 0
	for _, l := range lists {
		data, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			if f := strings.Fields(line); len(f) > 1 && f[0] == ifname {
				n++
			}
		}
	}
	return n
}

// waitFor polls cond every 20 ms until it holds, failing the test with
// what after cmdTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(cmdTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", cmdTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dumpOne starts `candump -L -n 1` on ifname and returns once its socket
// is bound (one more receiver on ifname), so no frame sent after is missed.
func dumpOne(t *testing.T, ifname string) *background {
	t.Helper()
	candump := need(t, "candump")
	before := canReceivers(t, ifname)
	b := start(t, candump, "-L", "-n", "1", ifname)
	waitFor(t, "candump to bind to "+ifname, func() bool {
		return canReceivers(t, ifname) > before || b.exited()
	})
	return b
}

// logFrame returns the frame of a candump -L line, "(time) IF FRAME",
// without the time: "IF FRAME".
func logFrame(t *testing.T, out string) string {
	t.Helper()
	line := strings.TrimSpace(out)
	if i := strings.Index(line, ") "); strings.HasPrefix(line, "(") && i > 0 {
		return line[i+2:]
	}
	t.Fatalf("not a candump -L line: %q", out)
	return ""
}
