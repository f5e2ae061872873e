package hil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// archiveFiles returns the regular files of the newc archive at path by name.
func archiveFiles(t *testing.T, path string) map[string]cpioEntry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]cpioEntry{}
	for _, e := range readNewc(t, data) {
		out[e.name] = e
	}
	return out
}

func writeTestFile(t *testing.T, path, data string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}

func TestBuildBase(t *testing.T) {
	k := &Kernel{Dir: t.TempDir(), Modules: []Module{{Name: "can"}, {Name: "i2c_stub"}}}
	src := t.TempDir()
	busybox := filepath.Join(src, "busybox")
	writeTestFile(t, busybox, "BUSYBOX", 0o755)
	writeTestFile(t, k.ModuleFile(k.Modules[0]), "CAN", 0o644)
	writeTestFile(t, k.ModuleFile(k.Modules[1]), "STUB", 0o644)
	tool, lib := filepath.Join(src, "runc"), filepath.Join(src, "libseccomp.so.2")
	writeTestFile(t, tool, "RUNC", 0o755)
	writeTestFile(t, lib, "LIB", 0o644)
	files := []File{{Name: "usr/sbin/runc", Src: tool}, {Name: "lib/x86_64-linux-gnu/libseccomp.so.2", Src: lib}}

	base, err := BuildBase(k, busybox, files)
	if err != nil {
		t.Fatal(err)
	}
	got := archiveFiles(t, base)
	for name, want := range map[string]struct {
		data string
		mode uint32
	}{
		"init":                                 {initScript, cpioFile | 0o755},
		"etc/berth-hil/init":                   {stage2Script, cpioFile | 0o755},
		"etc/berth-hil/modules":                {"can \ni2c_stub chip_addr=0x48\n", cpioFile | 0o644},
		"bin/busybox":                          {"BUSYBOX", cpioFile | 0o755},
		"lib/modules/can.ko":                   {"CAN", cpioFile | 0o644},
		"usr/sbin/runc":                        {"RUNC", cpioFile | 0o755},
		"lib/x86_64-linux-gnu/libseccomp.so.2": {"LIB", cpioFile | 0o644},
	} {
		if e, ok := got[name]; !ok || e.data != want.data || e.mode != want.mode {
			t.Errorf("%s = %q mode %o (present %v), want %q mode %o", name, e.data, e.mode, ok, want.data, want.mode)
		}
	}
	if got["dev/console"].mode != cpioCharDev|0o600 {
		t.Errorf("dev/console mode = %o", got["dev/console"].mode)
	}

	// Cached: the same inputs give the same file, not rebuilt.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(base, old, old); err != nil {
		t.Fatal(err)
	}
	again, err := BuildBase(k, busybox, files)
	if err != nil || again != base {
		t.Fatalf("second BuildBase = %s, %v; want the cached %s", again, err, base)
	}
	if st, err := os.Stat(base); err != nil || time.Since(st.ModTime()) > time.Minute {
		t.Errorf("a cached base is not marked used: %v %v", st.ModTime(), err)
	}

	// A changed file or another set of files is another base.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(lib, later, later); err != nil {
		t.Fatal(err)
	}
	changed, err := BuildBase(k, busybox, files)
	if err != nil || changed == base {
		t.Errorf("BuildBase after a library changed = %s, %v; want a new base", changed, err)
	}
	fewer, err := BuildBase(k, busybox, files[:1])
	if err != nil || fewer == base || fewer == changed {
		t.Errorf("BuildBase with fewer files = %s, %v; want a new base", fewer, err)
	}

	if _, err := BuildBase(k, busybox, []File{{Name: "x", Src: filepath.Join(src, "missing")}}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("BuildBase with a missing file = %v, want an error naming it", err)
	}
}

func TestBuildBasePrunesUnused(t *testing.T) {
	k := &Kernel{Dir: t.TempDir()}
	busybox := filepath.Join(t.TempDir(), "busybox")
	writeTestFile(t, busybox, "BUSYBOX", 0o755)
	stale, recent := filepath.Join(k.Dir, "base-000000000001.cpio"), filepath.Join(k.Dir, "base-000000000002.cpio")
	writeTestFile(t, stale, "old", 0o644)
	writeTestFile(t, recent, "new", 0o644)
	long := time.Now().Add(-baseUnusedFor - time.Hour)
	if err := os.Chtimes(stale, long, long); err != nil {
		t.Fatal(err)
	}
	if _, err := BuildBase(k, busybox, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a base unused for %v was kept: %v", baseUnusedFor, err)
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("a recently used base was removed: %v", err)
	}
}
