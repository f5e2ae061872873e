package daemon_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/core/api"
)

const busybox = "berth.local/busybox:1.35"

// The demo playbook: three containers from stacked images on a bridge
// network, a health-gated dependency and a persistent volume.
func demoPlaybook(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../testdata/demo/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDemoStackSurvivesBerthdKill9(t *testing.T) {
	needRoot(t)
	board, err := filepath.Abs("../../board-support/sim/board.hcl")
	if err != nil {
		t.Fatal(err)
	}
	b := newBerthd(t, "--board", board, "--plugin-dir", binDir)
	b.importImages("busybox", "base-config", "kvdb", "sensor", "dashboard", "cantool")

	out := b.mustBerth("validate", "--board", board, demoPlaybook(t))
	if !strings.Contains(out, "valid") {
		t.Fatalf("validate: %s", out)
	}
	out = b.mustBerth("plan", demoPlaybook(t))
	for _, c := range []string{"kvdb", "sensor", "dashboard", "speedo", "body"} {
		if !strings.Contains(out, c) {
			t.Errorf("plan does not mention %s:\n%s", c, out)
		}
	}
	b.mustBerth("up", demoPlaybook(t))
	before := b.waitFor("5 running, kvdb healthy", func(cs map[string]api.ContainerStatus) bool {
		return len(cs) == 5 && cs["kvdb"].Health == "healthy" &&
			cs["sensor"].State == "running" && cs["dashboard"].State == "running" &&
			cs["speedo"].State == "running" && cs["body"].State == "running"
	})
	if before["sensor"].Networks["backend"] == "" {
		t.Errorf("sensor has no address on backend: %+v", before["sensor"])
	}

	// The sensor writes to kvdb by name over the stack network; the
	// dashboard reads it back.
	waitLog(t, b, "dashboard", "temperature")

	// A persistent volume: kvdb's data file is in the volume dir on the host.
	if _, err := os.Stat(filepath.Join(b.state, "volumes", "demo", "kvdb-data")); err != nil {
		t.Errorf("volume dir: %v", err)
	}

	// exec runs in the container and returns its exit code.
	if out, code := b.berth("exec", "sensor", "--", "sh", "-c", "cat /etc/berth-demo.conf; grep kvdb /etc/hosts; exit 7"); code != 7 || !strings.Contains(out, "kvdb") {
		t.Errorf("exec: exit %d, output %q", code, out)
	}

	// kill -9 berthd: no container stops, and its plugin goes with it.
	plugin := pluginPid(t, b)
	b.kill9()
	for deadline := time.Now().Add(5 * time.Second); processAlive(plugin); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the vcan plugin (pid %d) outlived berthd's kill -9", plugin)
		}
	}
	for name, c := range before {
		if !processAlive(c.PID) {
			t.Errorf("%s (pid %d) died with berthd", name, c.PID)
		}
	}
	b.start()
	after := b.waitFor("5 re-adopted and running", func(cs map[string]api.ContainerStatus) bool {
		return len(cs) == 5 && cs["kvdb"].State == "running" && cs["sensor"].State == "running" && cs["dashboard"].State == "running"
	})
	for name, c := range before {
		if after[name].PID != c.PID {
			t.Errorf("%s: pid %d after restart, was %d (restarted instead of adopted)", name, after[name].PID, c.PID)
		}
	}
	out = b.mustBerth("ps")
	for _, c := range []string{"kvdb", "sensor", "dashboard", "running"} {
		if !strings.Contains(out, c) {
			t.Errorf("ps after restart lacks %q:\n%s", c, out)
		}
	}
	// The CAN containers reconnect to their device sockets, now served by
	// the new berthd, and receive again without restarting.
	op := operatorBus(t, b)
	sendUntilLogged(t, b, op, 0x1AB, "speedo", "powertrain 1AB#")

	// Logs written before the restart are still there.
	if out := b.mustBerth("logs", "sensor"); !strings.Contains(out, "temperature") {
		t.Errorf("logs after restart:\n%s", out)
	}

	b.mustBerth("down", "demo")
	for name, c := range before {
		if processAlive(c.PID) {
			t.Errorf("%s (pid %d) still runs after down", name, c.PID)
		}
	}
	if _, err := os.Stat(filepath.Join(b.state, "volumes", "demo", "kvdb-data")); err != nil {
		t.Errorf("persistent volume removed by down: %v", err)
	}
	assertNoMounts(t, b, filepath.Join(b.state, "rootfs"))
	// The stack's cgroups go with it, in every hierarchy.
	if cgs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", b.cgroup, "demo")); len(cgs) != 0 {
		t.Errorf("cgroups left after down: %v", cgs)
	}
}

func TestSecondBerthdOnOneStateDirIsRefused(t *testing.T) {
	needRoot(t)
	b := newBerthd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "berthd"), "--state-dir", b.state,
		"--run-dir", filepath.Join(t.TempDir(), "run"), "--runtime", "runc").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is in use by another berthd (pid") {
		t.Fatalf("second berthd on the same state dir: %v\n%s", err, out)
	}
}

func waitLog(t *testing.T, b *berthd, container, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := b.berth("logs", container)
		if strings.Contains(out, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q; logs:\n%s\nberthd:\n%s", container, want, out, b.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func assertNoMounts(t *testing.T, b *berthd, under string) {
	t.Helper()
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], under) {
			t.Errorf("mount left behind: %s", f[4])
		}
	}
}

func TestCrashingContainerIsRestartedWithBackoff(t *testing.T) {
	needRoot(t)
	b := newBerthd(t)
	b.importImages("busybox")
	pb := writePlaybook(t, `stack "crash" {
  container "crashy" {
    images  = ["`+busybox+`"]
    command = ["sh", "-c", "echo boom; exit 3"]
    restart {
      policy    = "on-failure"
      attempts  = 2
      delay     = "100ms"
      max_delay = "200ms"
    }
  }
}`)
	b.mustBerth("up", pb)
	cs := b.waitFor("crashy to give up", func(cs map[string]api.ContainerStatus) bool {
		return cs["crashy"].State == "failed"
	})
	if cs["crashy"].Restarts != 2 || cs["crashy"].ExitCode != 3 {
		t.Fatalf("crashy = %+v, want 2 restarts and exit code 3", cs["crashy"])
	}
	if out := b.mustBerth("logs", "crashy"); strings.Count(out, "boom") != 3 {
		t.Fatalf("want 3 runs in the log, got:\n%s", out)
	}
	// Each run's monitor handle is released with the run: no pidfd stays.
	if n := pidfds(t, b.cmd.Process.Pid); n != 0 {
		t.Fatalf("berthd holds %d pidfds after every run ended, want 0", n)
	}
}

// pidfds counts the pidfds process pid holds open.
func pidfds(t *testing.T, pid int) int {
	t.Helper()
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.Contains(target, "pidfd") {
			n++
		}
	}
	return n
}

func TestStopKillsContainerThatIgnoresSIGTERM(t *testing.T) {
	needRoot(t)
	b := newBerthd(t)
	b.importImages("busybox")
	pb := writePlaybook(t, `stack "stubborn" {
  container "stubborn" {
    images  = ["`+busybox+`"]
    command = ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done"]
    stop { timeout = "1s" }
  }
}`)
	b.mustBerth("up", pb)
	waitLog(t, b, "stubborn", "ready")
	pid := b.containers()["stubborn"].PID
	start := time.Now()
	b.mustBerth("down", "stubborn")
	took := time.Since(start)
	if took < time.Second || took > 10*time.Second {
		t.Errorf("down took %s; want the 1 s stop timeout then SIGKILL", took)
	}
	if processAlive(pid) {
		t.Errorf("pid %d still alive after down", pid)
	}
}

func TestPauseResumeAndResources(t *testing.T) {
	needRoot(t)
	b := newBerthd(t)
	b.importImages("busybox")
	pb := writePlaybook(t, `stack "res" {
  container "limited" {
    images  = ["`+busybox+`"]
    command = ["sh", "-c", "while true; do date; sleep 0.2; done"]
    resources {
      memory = "32MiB"
      pids   = 16
    }
  }
}`)
	b.mustBerth("up", pb)
	cs := b.waitFor("running", func(cs map[string]api.ContainerStatus) bool { return cs["limited"].State == "running" })
	// Applying the same playbook again changes nothing, not even the generation.
	if out := b.mustBerth("up", pb); !strings.Contains(out, "no changes (generation 1)") {
		t.Errorf("second up of the same playbook:\n%s", out)
	}
	mem, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", b.cgroup, "res", "limited", "memory.limit_in_bytes"))
	if err == nil && strings.TrimSpace(string(mem)) != "33554432" {
		t.Errorf("memory limit %s, want 33554432", mem)
	}
	b.mustBerth("pause", "limited")
	if st := b.containers()["limited"].State; st != "paused" {
		t.Fatalf("state after pause = %s", st)
	}
	state, _ := exec.Command("runc", "--root", filepath.Join(b.run, "runtime"), "state", "res+limited").Output()
	var s struct{ Status string }
	json.Unmarshal(state, &s)
	if s.Status != "paused" {
		t.Errorf("runtime says %q, want paused", s.Status)
	}
	b.mustBerth("resume", "limited")
	if st := b.containers()["limited"].State; st != "running" {
		t.Fatalf("state after resume = %s", st)
	}
	if !processAlive(cs["limited"].PID) {
		t.Fatal("container died across pause/resume")
	}
	// The container sees no host devices and runs without new privileges.
	out, code := b.berth("exec", "limited", "--", "sh", "-c", "ls /dev; grep NoNewPrivs /proc/self/status; cat /proc/kcore 2>&1 | head -c 1 | wc -c")
	if code != 0 || strings.Contains(out, "sda") || strings.Contains(out, "vda") || !strings.Contains(out, "NoNewPrivs:\t1") {
		t.Errorf("exec security check (exit %d):\n%s", code, out)
	}
}

func TestPlanNamesMissingImages(t *testing.T) {
	needRoot(t)
	b := newBerthd(t)
	b.importImages("busybox")
	pb := writePlaybook(t, `stack "missing" {
  container "app" {
    images = ["`+busybox+`", "berth.local/nope:1"]
  }
}`)
	out, code := b.berth("plan", pb)
	if code == 0 || !strings.Contains(out, "berth.local/nope:1") || !strings.Contains(out, "line 3") {
		t.Fatalf("plan with a missing image: exit %d\n%s", code, out)
	}
	out, code = b.berth("up", pb)
	if code == 0 || !strings.Contains(out, "berth.local/nope:1") {
		t.Fatalf("up with a missing image: exit %d\n%s", code, out)
	}
	if len(b.containers()) != 0 {
		t.Fatal("containers created despite the missing image")
	}
}

func TestImageRemoveAndGC(t *testing.T) {
	needRoot(t)
	b := newBerthd(t)
	b.importImages("busybox", "kvdb")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	images, err := b.client.Images(ctx)
	if err != nil || len(images) != 2 {
		t.Fatalf("images = %v, %v", images, err)
	}
	pb := writePlaybook(t, `stack "gc" {
  container "a" {
    images  = ["`+busybox+`"]
    command = ["sleep", "600"]
  }
}`)
	b.mustBerth("up", pb)
	if out, code := b.berth("image", "rm", busybox); code == 0 {
		t.Fatalf("removed an image in use:\n%s", out)
	}
	b.mustBerth("image", "rm", "berth.local/kvdb:1")
	images, _ = b.client.Images(ctx)
	if len(images) != 1 || images[0].Ref != busybox {
		t.Fatalf("images after rm = %+v", images)
	}
	b.mustBerth("down", "gc")
	b.mustBerth("image", "rm", busybox)
	blobs, _ := filepath.Glob(filepath.Join(b.state, "images", "blobs", "sha256", "*"))
	layers, _ := filepath.Glob(filepath.Join(b.state, "rootfs", "layers", "*"))
	if len(blobs) != 0 || len(layers) != 0 {
		t.Fatalf("after removing every image: %d blobs, %d layers left", len(blobs), len(layers))
	}
}
