package hil

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// cpioEntry is one record of a newc archive, as readNewc parses it.
type cpioEntry struct {
	name        string
	mode        uint32
	data        string
	rmaj, rmin  uint32
	headerStart int
}

// readNewc parses a newc archive independently of CPIOWriter, checking
// magic and 4-byte alignment, up to and including the trailer.
func readNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	field := func(i int) uint32 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("header at %d field %d: %v", off, i, err)
		}
		return uint32(v)
	}
	for {
		if off%4 != 0 {
			t.Fatalf("record at %d not 4-byte aligned", off)
		}
		if string(b[off:off+6]) != "070701" {
			t.Fatalf("bad magic %q at %d", b[off:off+6], off)
		}
		e := cpioEntry{mode: field(1), rmaj: field(9), rmin: field(10), headerStart: off}
		size, namesize := int(field(6)), int(field(11))
		e.name = string(b[off+110 : off+110+namesize-1])
		off = (off + 110 + namesize + 3) &^ 3
		e.data = string(b[off : off+size])
		off = (off + size + 3) &^ 3
		if e.name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, e)
	}
}

func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	c := NewCPIOWriter(&buf)
	steps := []error{
		c.Bytes("/etc/berth-hil/modules", 0o644, []byte("can \n")),
		c.Dir("etc", 0o700), // already created as a parent: not written twice
		c.Symlink("bin/sh", "busybox"),
		c.CharDev("dev/console", 0o600, 5, 1),
		c.Bytes("a/../odd", 0o755, []byte("x")), // cleaned to "odd"
		c.Close(),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	got := readNewc(t, buf.Bytes())
	want := []struct {
		name string
		mode uint32
		data string
	}{
		{"etc", cpioDir | 0o755, ""},
		{"etc/berth-hil", cpioDir | 0o755, ""},
		{"etc/berth-hil/modules", cpioFile | 0o644, "can \n"},
		{"bin", cpioDir | 0o755, ""},
		{"bin/sh", cpioSymlink | 0o777, "busybox"},
		{"dev", cpioDir | 0o755, ""},
		{"dev/console", cpioCharDev | 0o600, ""},
		{"odd", cpioFile | 0o755, "x"},
	}
	if len(got) != len(want) {
		t.Fatalf("archive has %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].name != w.name || got[i].mode != w.mode || got[i].data != w.data {
			t.Errorf("entry %d = %q %o %q, want %q %o %q", i, got[i].name, got[i].mode, got[i].data, w.name, w.mode, w.data)
		}
	}
	if got[6].rmaj != 5 || got[6].rmin != 1 {
		t.Errorf("dev/console rdev = %d:%d, want 5:1", got[6].rmaj, got[6].rmin)
	}
}

func TestCPIOWriterRejects(t *testing.T) {
	c := NewCPIOWriter(io.Discard)
	if err := c.Bytes("", 0o644, nil); err == nil {
		t.Error("empty name accepted")
	}
	if err := c.Bytes("a\x00b", 0o644, nil); err == nil {
		t.Error("name with NUL accepted")
	}
	if err := c.File("short", 0o644, 10, bytes.NewReader([]byte("abc"))); err == nil {
		t.Error("short reader accepted")
	}
	if err := c.Close(); err == nil {
		t.Error("Close after a failed write reported success")
	}
}

// TestCPIOWriterBusybox checks the archive with an independent reader:
// busybox cpio extracts it.
func TestCPIOWriterBusybox(t *testing.T) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs busybox (busybox-static) for an independent cpio reader")
	}
	var buf bytes.Buffer
	c := NewCPIOWriter(&buf)
	for _, err := range []error{
		c.Bytes("hil/pkg/testdata/a.txt", 0o640, []byte("alpha")),
		c.Bytes("hil/run", 0o755, []byte("#!/bin/sh\n")),
		c.Symlink("hil/link", "run"),
		c.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(bb, "cpio", "-i", "-d")
	cmd.Dir, cmd.Stdin = dir, &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("busybox cpio -i: %v: %s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "hil/pkg/testdata/a.txt"))
	if err != nil || string(data) != "alpha" {
		t.Errorf("a.txt = %q, %v", data, err)
	}
	st, err := os.Stat(filepath.Join(dir, "hil/run"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("run: %v %v", st, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "hil/link")); err != nil || target != "run" {
		t.Errorf("link -> %q, %v", target, err)
	}
}
