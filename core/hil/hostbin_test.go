package hil

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// dynamicHostPrograms returns host programs that are dynamically linked
// x86-64 executables: coreutils' ls (always there on Debian) and the guest
// tools that are installed; iproute2's ip has the deepest library tree.
func dynamicHostPrograms(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, name := range []string{"ls", "ip", "runc", "candump"} {
		p, err := LookTool(name)
		if err != nil || CheckStatic(p) == nil {
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		t.Skip("needs a dynamically linked x86-64 host program (ls from coreutils)")
	}
	return out
}

// TestHostBinaryMatchesLdd checks the files HostBinary finds against what
// the host's own loader resolves, as ldd prints it.
func TestHostBinaryMatchesLdd(t *testing.T) {
	ldd, err := exec.LookPath("ldd")
	if err != nil {
		t.Skip("needs ldd (libc-bin) as the independent resolver")
	}
	for _, prog := range dynamicHostPrograms(t) {
		t.Run(filepath.Base(prog), func(t *testing.T) {
			files, err := HostBinary(prog)
			if err != nil {
				t.Fatalf("HostBinary(%s): %v", prog, err)
			}
			if files[0] != (File{Name: guestName(prog), Src: prog}) {
				t.Errorf("first file = %+v, want the program itself", files[0])
			}
			var got []string
			for _, f := range files[1:] {
				got = append(got, realPath(t, f.Src))
			}
			out, err := exec.Command(ldd, prog).Output()
			if err != nil {
				t.Fatalf("ldd %s: %v", prog, err)
			}
			var want []string
			for line := range strings.Lines(string(out)) {
				f := strings.Fields(line)
				switch {
				case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
					want = append(want, realPath(t, f[2]))
				case len(f) >= 1 && strings.HasPrefix(f[0], "/"): // the interpreter
					want = append(want, realPath(t, f[0]))
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("HostBinary(%s) libraries\n got %v\nwant %v (ldd)", prog, got, want)
			}
		})
	}
}

// TestHostBinaryRunsInChroot copies what HostBinary returns, and nothing
// else, into an empty root and runs the program there.
func TestHostBinaryRunsInChroot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chroot")
	}
	for _, prog := range dynamicHostPrograms(t) {
		if filepath.Base(prog) == "candump" {
			continue // no version flag that exits 0
		}
		t.Run(filepath.Base(prog), func(t *testing.T) {
			files, err := HostBinary(prog)
			if err != nil {
				t.Fatalf("HostBinary(%s): %v", prog, err)
			}
			root := t.TempDir()
			for _, f := range files {
				data, err := os.ReadFile(f.Src)
				if err != nil {
					t.Fatal(err)
				}
				dst := filepath.Join(root, f.Name)
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dst, data, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("/"+files[0].Name, versionFlag(prog))
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s %s in a root holding only %d files from HostBinary: %v\n%s", prog, cmd.Args[1], len(files), err, out)
			}
		})
	}
}

// versionFlag is the argument that makes prog print its version and exit 0.
func versionFlag(prog string) string {
	if filepath.Base(prog) == "ip" {
		return "-V"
	}
	return "--version"
}

func TestLibResolver(t *testing.T) {
	progs := dynamicHostPrograms(t)
	prog := progs[0]
	want, err := HostBinary(prog)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("passes over objects of another machine", func(t *testing.T) {
		decoys := t.TempDir()
		for _, f := range want[2:] { // the libraries
			if err := os.WriteFile(filepath.Join(decoys, filepath.Base(f.Src)), elf32(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := LibResolver{Dirs: append([]string{decoys}, DefaultLibDirs()...)}.Files(prog)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("with i386 decoys first: %v, %v; want %v", got, err, want)
		}
	})

	t.Run("missing library", func(t *testing.T) {
		_, err := LibResolver{Dirs: []string{t.TempDir()}}.Files(prog)
		if !errors.Is(err, ErrLibraryNotFound) || !strings.Contains(err.Error(), "needed by "+prog) {
			t.Errorf("with an empty search dir: %v, want ErrLibraryNotFound naming %s", err, prog)
		}
	})

	dir := t.TempDir()
	static, i386 := filepath.Join(dir, "static"), filepath.Join(dir, "i386")
	if err := os.WriteFile(static, fakeELF("x=y\x00", false), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(i386, elf32(), 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("static", func(t *testing.T) {
		got, err := HostBinary(static)
		if err != nil || !slices.Equal(got, []File{{Name: guestName(static), Src: static}}) {
			t.Errorf("HostBinary(static) = %v, %v; want the file alone", got, err)
		}
	})

	t.Run("not x86-64", func(t *testing.T) {
		if _, err := HostBinary(i386); !errors.Is(err, ErrNotGuestBinary) {
			t.Errorf("HostBinary(i386) = %v, want ErrNotGuestBinary", err)
		}
	})

	t.Run("not ELF", func(t *testing.T) {
		script := filepath.Join(dir, "script")
		if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := HostBinary(script); err == nil || !strings.Contains(err.Error(), script) {
			t.Errorf("HostBinary(script) = %v, want an error naming it", err)
		}
	})
}

func TestExpandRunpath(t *testing.T) {
	got := expandRunpath([]string{"$ORIGIN/../lib:/opt/x", "${ORIGIN}::"}, "/usr/bin")
	if want := []string{"/usr/bin/../lib", "/opt/x", "/usr/bin"}; !slices.Equal(got, want) {
		t.Errorf("expandRunpath = %v, want %v", got, want)
	}
}

// realPath resolves every symlink in p.
func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// elf32 returns a minimal i386 ELF shared object header with no sections.
func elf32() []byte {
	hdr := elf.Header32{
		Type: uint16(elf.ET_DYN), Machine: uint16(elf.EM_386), Version: uint32(elf.EV_CURRENT),
		Ehsize: 52, Phentsize: 32, Shentsize: 40,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS32)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var b bytes.Buffer
	must(binary.Write(&b, binary.LittleEndian, hdr))
	return b.Bytes()
}
