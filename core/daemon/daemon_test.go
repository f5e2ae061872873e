package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/core/syncbuf"
)

// These tests run berthd, berth-monitor and real containers through runc,
// as root. TestMain builds the binaries and the demo images once.

var (
	binDir    string // berthd, berth, berth-monitor
	imagesDir string // OCI archives from cmd/mkimage
	setupErr  error
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		tmp, err := os.MkdirTemp("", "berth-daemon-test-")
		if err != nil {
			panic(err)
		}
		binDir, imagesDir = filepath.Join(tmp, "bin"), filepath.Join(tmp, "images")
		setupErr = setup()
		code := m.Run()
		os.RemoveAll(tmp)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func setup() error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	build := exec.Command("go", "build", "-o", binDir+"/", "./cmd/berthd", "./cmd/berth", "./cmd/berth-monitor", "./plugins/vcan/cmd/berth-plugin-vcan")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build binaries: %v\n%s", err, out)
	}
	mk := exec.Command("go", "run", "./cmd/mkimage", "-o", imagesDir)
	mk.Dir = root
	if out, err := mk.CombinedOutput(); err != nil {
		return fmt.Errorf("build images: %v\n%s", err, out)
	}
	return nil
}

// berthd is one daemon under test, in its own network namespace, with its
// own state and run dirs and cgroup parent.
type berthd struct {
	t      *testing.T
	state  string
	run    string
	socket string
	cgroup string
	cmd    *exec.Cmd
	log    *syncbuf.Buffer
	client *api.Client
	exited chan struct{}
	args   []string // more berthd flags
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs containers through runc, mounts overlayfs and makes network namespaces")
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

// newBerthd starts a berthd with its own dirs; args are more flags.
func newBerthd(t *testing.T, args ...string) *berthd {
	t.Helper()
	dir := t.TempDir()
	b := &berthd{
		t:      t,
		args:   args,
		state:  filepath.Join(dir, "state"),
		run:    filepath.Join(dir, "run"),
		cgroup: fmt.Sprintf("berth-test-%d-%s", os.Getpid(), filepath.Base(dir)),
	}
	b.socket = filepath.Join(b.run, "berthd.sock")
	t.Cleanup(b.cleanup)
	b.start()
	return b
}

// start runs berthd inside a new network namespace (unshare) so its
// bridges never touch the host's, and waits for its socket to answer.
func (b *berthd) start() {
	b.t.Helper()
	b.log = &syncbuf.Buffer{}
	b.cmd = exec.Command("unshare", append([]string{"--net", "--", filepath.Join(binDir, "berthd"),
		"--state-dir", b.state, "--run-dir", b.run, "--runtime", "runc", "--cgroup-parent", b.cgroup, "--log-level", "debug"}, b.args...)...)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.exited = make(chan struct{})
	go func() { b.cmd.Wait(); close(b.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := api.Dial(ctx, b.socket)
		if err == nil {
			_, err = c.Version(ctx)
			if err == nil {
				cancel()
				b.client = c
				return
			}
			c.Close()
		}
		cancel()
		select {
		case <-b.exited:
			b.t.Fatalf("berthd exited at start:\n%s", b.log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("berthd did not answer in 20 s:\n%s", b.log)
		}
	}
}

// kill9 kills berthd with SIGKILL, as a crash would.
func (b *berthd) kill9() {
	b.t.Helper()
	b.client.Close()
	syscall.Kill(b.cmd.Process.Pid, syscall.SIGKILL)
	<-b.exited
}

// berth runs the CLI against this daemon and returns its output and exit code.
func (b *berthd) berth(args ...string) (string, int) {
	b.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "berth"), append([]string{"--host", b.socket}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		b.t.Fatal(err)
	}
	return string(out), 0
}

func (b *berthd) mustBerth(args ...string) string {
	b.t.Helper()
	out, code := b.berth(args...)
	if code != 0 {
		b.t.Fatalf("berth %s: exit %d\n%s\nberthd log:\n%s", strings.Join(args, " "), code, out, b.log)
	}
	return out
}

func (b *berthd) importImages(names ...string) {
	b.t.Helper()
	for _, n := range names {
		b.mustBerth("image", "import", filepath.Join(imagesDir, n+".tar"))
	}
}

// cleanup stops whatever the test left: the stacks, berthd, and any
// container the runtime still knows.
func (b *berthd) cleanup() {
	if b.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if cs, err := b.client.Containers(ctx); err == nil {
			stacks := map[string]bool{}
			for _, c := range cs {
				stacks[c.Stack] = true
			}
			for s := range stacks {
				b.client.Down(ctx, s, nil)
			}
		}
		cancel()
		b.client.Close()
	}
	if b.cmd != nil && b.cmd.Process != nil {
		syscall.Kill(b.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-b.exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(b.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	// Anything left (a failed test) is killed and deleted.
	root := filepath.Join(b.run, "runtime")
	out, _ := exec.Command("runc", "--root", root, "list", "-q").Output()
	for _, id := range strings.Fields(string(out)) {
		exec.Command("runc", "--root", root, "delete", "--force", id).Run()
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	var ours []string
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (strings.HasPrefix(f[4], b.state) || strings.HasPrefix(f[4], b.run)) {
			ours = append(ours, f[4])
		}
	}
	for i := len(ours) - 1; i >= 0; i-- {
		syscall.Unmount(ours[i], syscall.MNT_DETACH)
	}
}

func (b *berthd) containers() map[string]api.ContainerStatus {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := b.client.Containers(ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	out := map[string]api.ContainerStatus{}
	for _, c := range cs {
		out[c.Name] = c
	}
	return out
}

// waitFor polls cond every 50 ms for up to 20 s.
func (b *berthd) waitFor(what string, cond func(map[string]api.ContainerStatus) bool) map[string]api.ContainerStatus {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cs := b.containers()
		if cond(cs) {
			return cs
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting for %s: %+v\nberthd log:\n%s", what, cs, b.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writePlaybook(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "playbook.hcl")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func processAlive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}
