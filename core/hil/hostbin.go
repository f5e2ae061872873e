package hil

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// File is one host file, or a directory tree, to put in the guest.
type File struct {
	// Name is the path in the guest, relative to its root ("usr/sbin/runc").
	Name string
	// Src is the host path. Symlinks are followed: the guest gets the
	// content (and permission bits) of the file Src resolves to; a
	// directory is copied as a tree (see WritePayload).
	Src string
}

// DefaultLibDirs are the directories the host's dynamic loader searches
// (after an object's own RUNPATH) on a Debian amd64 system, in its order.
func DefaultLibDirs() []string {
	return []string{
		"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
		"/lib64", "/usr/lib64", "/lib", "/usr/lib",
	}
}

// HostBinary returns the files that make the dynamically or statically
// linked x86-64 executable at path run in the guest, resolving libraries
// in DefaultLibDirs. See LibResolver.Files.
func HostBinary(path string) ([]File, error) {
	return LibResolver{Dirs: DefaultLibDirs()}.Files(path)
}

// LibResolver finds the shared libraries an ELF executable needs, as the
// dynamic loader would: in each object's DT_RUNPATH (or DT_RPATH), with
// $ORIGIN expanded, then in Dirs. Only objects of the executable's class
// and machine count, so an i386 library of the same name is passed over.
type LibResolver struct {
	Dirs []string
}

// Files returns the executable at path (at that path in the guest), its
// ELF interpreter (at the path its PT_INTERP names) and the closure of its
// DT_NEEDED libraries (each at the path where it was found, so the guest's
// loader finds it in the same default directory). The executable comes
// first, then the interpreter, then the libraries breadth first; each name
// once. A static executable gives one file. Only x86-64 objects are
// accepted, the guest's machine. A library found nowhere is
// ErrLibraryNotFound, naming the object that needs it.
func (r LibResolver) Files(path string) ([]File, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	exe, err := openELF(path)
	if err != nil {
		return nil, err
	}
	defer exe.Close()
	if exe.Class != elf.ELFCLASS64 || exe.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("%s: %w: it is %v %v, the guest runs x86-64", path, ErrNotGuestBinary, exe.Class, exe.Machine)
	}
	files := []File{{Name: guestName(path), Src: path}}
	seen := map[string]bool{} // DT_NEEDED names resolved
	for _, p := range exe.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("%s: read PT_INTERP: %w", path, err)
		}
		interp := strings.TrimRight(string(b), "\x00")
		if _, err := os.Stat(interp); err != nil {
			return nil, fmt.Errorf("%s: ELF interpreter: %w", path, err)
		}
		files = append(files, File{Name: guestName(interp), Src: interp})
		// The loaded interpreter satisfies a DT_NEEDED of its name (libc
		// names it): no second copy.
		seen[filepath.Base(interp)] = true
	}

	queue := []string{path}
	for len(queue) > 0 {
		obj := queue[0]
		queue = queue[1:]
		f := exe
		if obj != path {
			if f, err = openELF(obj); err != nil {
				return nil, err
			}
		}
		needed, err := f.DynString(elf.DT_NEEDED) // none for a static object
		runpath := dynPaths(f, obj)
		if f != exe {
			f.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: read DT_NEEDED: %w", obj, err)
		}
		for _, lib := range needed {
			if seen[lib] {
				continue
			}
			seen[lib] = true
			found, err := r.find(lib, runpath, exe.Class, exe.Machine)
			if err != nil {
				return nil, fmt.Errorf("%s (needed by %s): %w", lib, obj, err)
			}
			files = append(files, File{Name: guestName(found), Src: found})
			queue = append(queue, found)
		}
	}
	return files, nil
}

// find returns the first file named lib in runpath, then r.Dirs, that is
// an ELF object of the given class and machine.
func (r LibResolver) find(lib string, runpath []string, class elf.Class, machine elf.Machine) (string, error) {
	if strings.Contains(lib, "/") {
		return "", fmt.Errorf("%w: a DT_NEEDED path (%s) is not supported", ErrLibraryNotFound, lib)
	}
	dirs := append(append([]string(nil), runpath...), r.Dirs...)
	for _, d := range dirs {
		p := filepath.Join(d, lib)
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		ok := f.Class == class && f.Machine == machine
		f.Close()
		if ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w in %s", ErrLibraryNotFound, strings.Join(dirs, ":"))
}

// dynPaths returns the object's DT_RUNPATH, or its DT_RPATH when it has no
// RUNPATH, as expandRunpath gives them.
func dynPaths(f *elf.File, path string) []string {
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		vals, _ := f.DynString(tag)
		if dirs := expandRunpath(vals, filepath.Dir(path)); len(dirs) > 0 {
			return dirs
		}
	}
	return nil
}

// expandRunpath splits colon-separated search paths, drops empty entries
// and replaces $ORIGIN (or ${ORIGIN}) with origin, the directory of the
// object that names them.
func expandRunpath(vals []string, origin string) []string {
	var out []string
	for _, v := range vals {
		for d := range strings.SplitSeq(v, ":") {
			d = strings.ReplaceAll(d, "${ORIGIN}", "$ORIGIN")
			d = strings.ReplaceAll(d, "$ORIGIN", origin)
			if d != "" {
				out = append(out, d)
			}
		}
	}
	return out
}

func openELF(path string) (*elf.File, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read ELF %s: %w", path, err)
	}
	return f, nil
}

// guestName is the archive name of the absolute host path p.
func guestName(p string) string { return strings.TrimPrefix(filepath.ToSlash(filepath.Clean(p)), "/") }
