// Package ocitest builds throwaway containers for tests: a busybox root
// file system, a bundle with a unique cgroup, and a runtime with its own
// state directory, all removed when the test ends.
package ocitest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/core/fsutil"
	"github.com/berth-io/berth/core/oci"
)

// Busybox is the static busybox the test containers run.
const Busybox = "/bin/busybox"

// CgroupParent is the cgroup (relative to each hierarchy's root) under
// which test containers get their own cgroup.
const CgroupParent = "/berth-test"

// NeedRoot skips the test unless it runs as root with a static busybox.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates containers with an OCI runtime")
	}
	if _, err := os.Stat(Busybox); err != nil {
		t.Skip("needs a static busybox at " + Busybox + " (Debian: busybox-static)")
	}
}

var (
	selectOnce sync.Once
	selected   *oci.Runtime
	selectErr  error
)

// Runtime returns the runtime oci.Select picks on this host, with a fresh
// --root state directory; containers left in it are deleted at cleanup.
func Runtime(t testing.TB) *oci.Runtime {
	t.Helper()
	selectOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-probe-")
		if err != nil {
			selectErr = err
			return
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		selected, selectErr = oci.Select(ctx, "", dir, nil)
	})
	if selectErr != nil {
		t.Fatalf("select runtime: %v", selectErr)
	}
	rt := *selected
	rt.Root = t.TempDir()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cs, err := rt.List(ctx)
		if err != nil {
			t.Logf("cleanup: list: %v", err)
			return
		}
		for _, c := range cs {
			if err := rt.Delete(ctx, c.ID, true); err != nil && !errors.Is(err, oci.ErrNotExist) {
				t.Logf("cleanup: %v", err)
			}
		}
	})
	return &rt
}

// ID returns a unique container id.
func ID(t testing.TB) string {
	b := make([]byte, 6)
	rand.Read(b)
	return "bt-" + hex.EncodeToString(b)
}

// Rootfs returns a temporary root file system holding busybox and links
// for the applets the tests use, plus /etc/passwd and /etc/group.
func Rootfs(t testing.TB) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := fsutil.CopyFile(Busybox, filepath.Join(root, "bin", "busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "echo", "sleep", "cat", "true", "false", "kill", "id", "printf", "seq", "yes", "head", "ls"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\napp:x:1000:\ncan:x:1001:app\n",
	}
	for n, s := range files {
		if err := os.WriteFile(filepath.Join(root, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// Bundle writes a bundle running args in a fresh busybox rootfs, with
// cgroupsPath CgroupParent/id, and removes the container's cgroups at
// cleanup. edit, when not nil, adjusts the options first.
func Bundle(t testing.TB, id string, edit func(*oci.SpecOptions), args ...string) string {
	t.Helper()
	rootfs := Rootfs(t)
	o := oci.SpecOptions{
		Name:        id,
		Rootfs:      rootfs,
		Args:        args,
		CgroupsPath: CgroupParent + "/" + id,
	}
	if edit != nil {
		edit(&o)
	}
	spec, err := oci.Spec(o)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(rootfs)
	if err := oci.WriteBundle(dir, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveCgroups(id) })
	return dir
}

// RemoveCgroups removes the test cgroups of container id in every
// hierarchy, and the parent when it is empty. Missing ones are ignored.
func RemoveCgroups(id string) {
	for _, pat := range []string{"/sys/fs/cgroup/*" + CgroupParent, "/sys/fs/cgroup" + CgroupParent} {
		parents, _ := filepath.Glob(pat)
		for _, p := range parents {
			os.Remove(filepath.Join(p, id))
			os.Remove(p) // fails while other tests use it; that is fine
		}
	}
}
