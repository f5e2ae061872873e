package oci_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-io/berth/core/oci"
	"github.com/berth-io/berth/core/oci/ocitest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// hybridCgroups reports whether the host mounts cgroup v1 controllers with
// a cgroup2 hierarchy beside them, which crun refuses.
func hybridCgroups() bool {
	var root, unified unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &root) != nil || unix.Statfs("/sys/fs/cgroup/unified", &unified) != nil {
		return false
	}
	return root.Type != unix.CGROUP2_SUPER_MAGIC && unified.Type == unix.CGROUP2_SUPER_MAGIC
}

func TestSelect(t *testing.T) {
	ocitest.NeedRoot(t)
	_, crunErr := oci.New("crun")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, err := oci.Select(ctx, "", t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	warns := strings.Count(logs.String(), "level=WARN")
	switch {
	case crunErr == nil && hybridCgroups():
		if rt.Name != "runc" {
			t.Fatalf("selected %s on a hybrid cgroup host, want runc", rt.Name)
		}
		if warns != 1 || !strings.Contains(logs.String(), "runtime=crun") || !strings.Contains(logs.String(), "hybrid") {
			t.Errorf("want one warning with crun's reason, got:\n%s", logs.String())
		}
	case crunErr == nil:
		if rt.Name != "crun" || warns != 0 {
			t.Errorf("selected %s with %d warnings where crun works:\n%s", rt.Name, warns, logs.String())
		}
	default: // no crun installed: runc after one warning
		if rt.Name != "runc" || warns != 1 {
			t.Errorf("selected %s with %d warnings without crun:\n%s", rt.Name, warns, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "oci runtime selected") || !strings.Contains(logs.String(), "probe=") {
		t.Errorf("no selection line with the probe time:\n%s", logs.String())
	}
	v, err := rt.Version(ctx)
	if err != nil || !strings.Contains(v, rt.Name) {
		t.Errorf("version = %q, %v", v, err)
	}
	t.Logf("selected %s (%s)", rt.Name, v)
}

func TestSelectFails(t *testing.T) {
	ocitest.NeedRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A dynamically linked probe cannot run in an empty rootfs: every
	// candidate fails, and the error names each of them.
	_, err := oci.Select(ctx, "runc", t.TempDir(), nil, oci.ProbeBinary("/usr/bin/env", "true"))
	if !errors.Is(err, oci.ErrNoRuntime) || !strings.Contains(err.Error(), "runc:") || !strings.Contains(err.Error(), "crun:") {
		t.Errorf("err = %v", err)
	}
}

func TestLifecycle(t *testing.T) {
	ocitest.NeedRoot(t)
	rt := ocitest.Runtime(t)
	id := ocitest.ID(t)
	bundle := ocitest.Bundle(t, id, nil, "/bin/sleep", "600")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := rt.State(ctx, id); !errors.Is(err, oci.ErrNotExist) {
		t.Fatalf("state before create: %v, want ErrNotExist", err)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	if err := rt.Create(ctx, id, bundle, pidFile, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := rt.State(ctx, id); err != nil || st.Status != specs.StateCreated || st.Pid <= 0 {
		t.Fatalf("state after create = %+v, %v", st, err)
	}
	if err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, rt, id, specs.StateRunning)

	cs, err := rt.List(ctx)
	if err != nil || !slices.ContainsFunc(cs, func(c oci.Container) bool { return c.ID == id && c.Bundle == bundle }) {
		t.Errorf("list = %+v, %v", cs, err)
	}

	var out, errb bytes.Buffer
	code, err := rt.Exec(ctx, id, specs.Process{Args: []string{"/bin/sh", "-c", "echo out; echo err >&2; hostname; exit 7"}, Env: []string{oci.DefaultPath}},
		nil, &out, &errb)
	if err != nil || code != 7 || out.String() != "out\n"+id+"\n" || errb.String() != "err\n" {
		t.Errorf("exec = %d, %v, stdout %q, stderr %q", code, err, out.String(), errb.String())
	}
	// A missing or non-executable command answers as a shell does.
	errb.Reset()
	if code, err := rt.Exec(ctx, id, specs.Process{Args: []string{"/no/such/binary"}}, nil, nil, &errb); err != nil || code != 127 || !strings.Contains(errb.String(), `"/no/such/binary": not found`) {
		t.Errorf("exec of a missing binary = %d, %v, stderr %q; want 127", code, err, errb.String())
	}
	errb.Reset()
	if code, err := rt.Exec(ctx, id, specs.Process{Args: []string{"/etc/passwd"}}, nil, nil, &errb); err != nil || code != 126 {
		t.Errorf("exec of a non-executable file = %d, %v, stderr %q; want 126", code, err, errb.String())
	}
	// An exec that outlives its ctx is killed, not left in the container.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = rt.Exec(short, id, specs.Process{Args: []string{"/bin/sleep", "37"}, Env: []string{oci.DefaultPath}}, nil, nil, nil)
	cancel()
	if err == nil {
		t.Error("exec past its deadline: no error")
	}
	if pid := findProcess("/bin/sleep\x0037\x00"); pid != 0 {
		t.Errorf("exec left running after its deadline: pid %d", pid)
	}

	if err := rt.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, rt, id, specs.ContainerState("paused"))
	if err := rt.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, rt, id, specs.StateRunning)

	if err := rt.Kill(ctx, id, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, rt, id, specs.StateStopped)
	if err := rt.Delete(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.State(ctx, id); !errors.Is(err, oci.ErrNotExist) {
		t.Errorf("state after delete: %v, want ErrNotExist", err)
	}
	if err := rt.Kill(ctx, id, syscall.SIGTERM, false); !errors.Is(err, oci.ErrNotExist) {
		t.Errorf("kill after delete: %v, want ErrNotExist", err)
	}
}

func TestCreateErrorCarriesRuntimeMessage(t *testing.T) {
	ocitest.NeedRoot(t)
	rt := ocitest.Runtime(t)
	id := ocitest.ID(t)
	bundle := ocitest.Bundle(t, id, nil, "/no/such/binary")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := rt.Create(ctx, id, bundle, filepath.Join(t.TempDir(), "pid"), nil, nil, nil)
	if err == nil {
		err = rt.Start(ctx, id)
	}
	var re *oci.RuntimeError
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "/no/such/binary") {
		t.Fatalf("err = %v, want the runtime's message naming the binary", err)
	}
	t.Logf("runtime said: %v", err)
	rt.Delete(ctx, id, true)
}

func wantStatus(t *testing.T, rt *oci.Runtime, id string, want specs.ContainerState) {
	t.Helper()
	st, err := rt.State(context.Background(), id)
	if err != nil || st.Status != want {
		t.Fatalf("state = %+v, %v; want %s", st, err, want)
	}
}

// waitStatus polls the state until it is want, for at most 10s.
func waitStatus(t *testing.T, rt *oci.Runtime, id string, want specs.ContainerState) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := rt.State(context.Background(), id)
		if err == nil && st.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state = %+v, %v; want %s within 10s", st, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// findProcess returns the pid of a live process whose /proc cmdline is
// cmdline, or 0.
func findProcess(cmdline string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d, "cmdline")); err == nil && string(b) == cmdline {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	return 0
}

func TestStartFailure(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`start x: container start failed: run x: runc run x: runc run failed: unable to start container process: exec: "/bin/nope": stat /bin/nope: no such file or directory`,
			"command \"/bin/nope\" is not in the container's images: fix `command` in the playbook or add an image that has it"},
		{`runc run failed: unable to start container process: exec: "/etc/hosts": permission denied`,
			"command \"/etc/hosts\" is not executable in the container: check its mode, or fix `command` in the playbook"},
		{`runc run x: cgroup: no such controller`, `runc run x: cgroup: no such controller`},
	} {
		if got := oci.StartFailure(errors.New(tc.in)); got != tc.want {
			t.Errorf("StartFailure(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
	}
}
