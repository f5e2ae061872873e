package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-io/berth/core/hil"
)

// TestRuncRunsBusybox runs a container with runc from a bundle made here:
// a rootfs holding only static busybox, and the config `runc spec` writes.
// In the VM this needs a root runc can pivot_root away from (not the
// initramfs's own mount), cgroup2, and runc's shared libraries.
func TestRuncRunsBusybox(t *testing.T) {
	needRoot(t, "runs a container with runc")
	runc := need(t, "runc")
	busybox := need(t, "busybox")
	if err := hil.CheckStatic(busybox); err != nil {
		t.Skipf("needs a static busybox (busybox-static) for the container's rootfs: %v", err)
	}

	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"bin/busybox": string(bb), "etc/marker": "from the bundle\n"}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("busybox", filepath.Join(rootfs, "bin/sh")); err != nil {
		t.Fatal(err)
	}

	run(t, runc, "spec", "--bundle", bundle)
	const script = `echo "pid=$$ host=$(hostname) marker=$(cat /etc/marker)"; exit 7`
	editSpec(t, filepath.Join(bundle, "config.json"), func(spec map[string]any) {
		proc := spec["process"].(map[string]any)
		proc["terminal"] = false
		proc["args"] = []string{"/bin/sh", "-c", script}
		spec["hostname"] = "hil-ctr"
	})

	state := t.TempDir() // runc's state root: nothing shared with other runc users
	id := fmt.Sprintf("hil-runc-%d", os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, runc, "--root", state, "run", "--bundle", bundle, id)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("runc run: %v (want exit status 7)\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "pid=1 host=hil-ctr marker=from the bundle"; got != want {
		t.Errorf("container said %q, want %q", got, want)
	}
	// runc run deletes the container when it exits.
	if out, err := tryRun(runc, "--root", state, "list", "-q"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("runc list after the run = %q, %v; want no container", out, err)
	}
}

// editSpec rewrites the OCI runtime config at path with edit.
func editSpec(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	edit(spec)
	if data, err = json.MarshalIndent(spec, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
