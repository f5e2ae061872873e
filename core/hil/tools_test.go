package hil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookTool(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	prog := filepath.Join(dir, "tool")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := LookTool("tool"); err != nil || p != prog {
		t.Errorf("LookTool(tool) = %q, %v; want %q from PATH", p, err, prog)
	}
	if p, err := LookTool(prog); err != nil || p != prog {
		t.Errorf("LookTool(%s) = %q, %v", prog, p, err)
	}
	if _, err := LookTool(filepath.Join(dir, "none")); !errors.Is(err, ErrToolNotFound) {
		t.Errorf("LookTool of a missing path = %v, want ErrToolNotFound", err)
	}
	// Not in PATH, but in an sbin dir, as runc is for a non-root PATH.
	if _, err := os.Stat("/usr/sbin/runc"); err == nil {
		if p, err := LookTool("runc"); err != nil || p != "/usr/sbin/runc" {
			t.Errorf("LookTool(runc) with PATH=%s = %q, %v; want /usr/sbin/runc", dir, p, err)
		}
	}
}

func TestToolFiles(t *testing.T) {
	progs := dynamicHostPrograms(t)
	tools := []Tool{{Name: progs[0], Package: "p"}, {Name: progs[0], Package: "p"}}
	files, err := ToolFiles(tools)
	if err != nil {
		t.Fatal(err)
	}
	once, err := HostBinary(progs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(once) {
		t.Errorf("ToolFiles of one program twice = %d files, want %d (each once)", len(files), len(once))
	}

	_, err = ToolFiles([]Tool{{Name: "no-such-tool-berth", Package: "can-utils"}})
	if !errors.Is(err, ErrToolNotFound) || !strings.Contains(err.Error(), "install the Debian package can-utils") {
		t.Errorf("ToolFiles of a missing tool = %v, want ErrToolNotFound naming its package", err)
	}
}
