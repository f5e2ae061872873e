package fsutil

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// temps returns the names in dir that start with TempPrefix.
func temps(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func checkFile(t *testing.T, path string, want []byte, perm os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s holds %q, want %q", path, got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != perm {
		t.Fatalf("%s mode %v, want %v", path, fi.Mode().Perm(), perm)
	}
}

func TestWriteFile(t *testing.T) {
	long := strings.Repeat("n", 250)
	cases := []struct {
		name string
		file string
		old  []byte // written first when not nil
		data []byte
		perm os.FileMode
	}{
		{name: "new private", file: "state.json", data: []byte(`{"a":1}`), perm: 0o600},
		{name: "new public", file: "index.json", data: []byte("x\n"), perm: 0o644},
		{name: "executable", file: "run", data: []byte("#!/bin/sh\n"), perm: 0o755},
		{name: "read only", file: "blob", data: []byte("sealed"), perm: 0o444},
		{name: "empty", file: "empty", data: nil, perm: 0o600},
		{name: "overwrite longer with shorter", file: "config.json", old: bytes.Repeat([]byte("o"), 4096), data: []byte("new"), perm: 0o600},
		{name: "overwrite changes perm", file: "pid", old: []byte("1"), data: []byte("2"), perm: 0o644},
		{name: "long name", file: long, data: []byte("l"), perm: 0o600},
	}
	writers := map[string]func(string, []byte, os.FileMode) error{"WriteFile": WriteFile, "ReplaceFile": ReplaceFile}
	for wname, write := range writers {
		for _, tc := range cases {
			t.Run(wname+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				p := filepath.Join(dir, tc.file)
				if tc.old != nil {
					if err := os.WriteFile(p, tc.old, 0o666); err != nil {
						t.Fatal(err)
					}
				}
				if err := write(p, tc.data, tc.perm); err != nil {
					t.Fatalf("%s: %v", wname, err)
				}
				checkFile(t, p, tc.data, tc.perm)
				if l := temps(t, dir); len(l) != 0 {
					t.Fatalf("temporary files left: %v", l)
				}
			})
		}
	}
}

func TestWriteFileFails(t *testing.T) {
	sentinel := errors.New("digest mismatch")
	cases := []struct {
		name    string
		setup   func(t *testing.T, dir string) string // returns the target path
		write   func(w io.Writer) error
		wantErr error // matched with errors.Is
	}{
		{
			name:    "missing dir",
			setup:   func(t *testing.T, dir string) string { return filepath.Join(dir, "nope", "f") },
			write:   func(w io.Writer) error { _, err := w.Write([]byte("x")); return err },
			wantErr: fs.ErrNotExist,
		},
		{
			name:    "write aborts",
			setup:   func(t *testing.T, dir string) string { return filepath.Join(dir, "f") },
			write:   func(w io.Writer) error { w.Write([]byte("partial")); return sentinel },
			wantErr: sentinel,
		},
		{
			name: "target is a non-empty dir",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "d")
				if err := os.MkdirAll(filepath.Join(p, "child"), 0o755); err != nil {
					t.Fatal(err)
				}
				return p
			},
			write: func(w io.Writer) error { _, err := w.Write([]byte("x")); return err },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := tc.setup(t, dir)
			before, beforeErr := os.ReadFile(p)
			err := WriteFileFrom(p, 0o600, tc.write)
			if err == nil {
				t.Fatal("WriteFileFrom succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == sentinel && err != sentinel {
				t.Fatalf("write's error came back changed: %v", err)
			}
			after, afterErr := os.ReadFile(p)
			if !bytes.Equal(before, after) || (beforeErr == nil) != (afterErr == nil) {
				t.Fatalf("target changed: %q (%v) -> %q (%v)", before, beforeErr, after, afterErr)
			}
			if l := temps(t, dir); len(l) != 0 {
				t.Fatalf("temporary files left: %v", l)
			}
		})
	}
}

func TestWriteFileAbortKeepsOld(t *testing.T) {
	p := filepath.Join(t.TempDir(), "index.json")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteFileFrom(p, 0o600, func(w io.Writer) error {
		w.Write([]byte("torn"))
		return io.ErrUnexpectedEOF
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
	checkFile(t, p, []byte("old"), 0o644)
}

// CreateFile writes a new file with exactly its mode and refuses to
// replace one, leaving it as it was.
func TestCreateFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "generation.json")
	if err := CreateFile(p, []byte("new"), 0o640); err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, []byte("new"), 0o640)
	if err := CreateFile(p, []byte("again"), 0o600); !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), p) {
		t.Fatalf("CreateFile over a file = %v, want ErrExist naming it", err)
	}
	checkFile(t, p, []byte("new"), 0o640)
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Fatalf("SyncDir: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "gone")
	if err := SyncDir(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("SyncDir(missing) = %v, want ErrNotExist naming the dir", err)
	}
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestCopy(t *testing.T) {
	content := bytes.Repeat([]byte("busybox\x00"), 64<<10) // 512 KiB, more than one copy buffer
	cases := []struct {
		name     string
		fn       func(src, dst string, perm os.FileMode) error
		dstOld   []byte // written to dst first when not nil
		wantLink bool
	}{
		{name: "copy new", fn: CopyFile},
		{name: "copy over existing", fn: CopyFile, dstOld: []byte("old")},
		{name: "link new", fn: LinkOrCopy, wantLink: true},
		{name: "link falls back to copy when dst exists", fn: LinkOrCopy, dstOld: []byte("old")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
			if err := os.WriteFile(src, content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(src, 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.dstOld != nil {
				if err := os.WriteFile(dst, tc.dstOld, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.fn(src, dst, 0o755); err != nil {
				t.Fatalf("copy: %v", err)
			}
			if linked := ino(t, src) == ino(t, dst); linked != tc.wantLink {
				t.Fatalf("dst linked = %v, want %v", linked, tc.wantLink)
			}
			wantPerm := os.FileMode(0o755)
			if tc.wantLink {
				wantPerm = 0o700 // a link keeps src's mode
			}
			checkFile(t, dst, content, wantPerm)
			checkFile(t, src, content, 0o700)
			if l := temps(t, dir); len(l) != 0 {
				t.Fatalf("temporary files left: %v", l)
			}
		})
	}
}

func TestCopyMissingSource(t *testing.T) {
	dir := t.TempDir()
	for _, fn := range []func(string, string, os.FileMode) error{CopyFile, LinkOrCopy} {
		err := fn(filepath.Join(dir, "missing"), filepath.Join(dir, "dst"), 0o644)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want ErrNotExist", err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "dst")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("dst created: %v", err)
		}
		if l := temps(t, dir); len(l) != 0 {
			t.Fatalf("temporary files left: %v", l)
		}
	}
}
