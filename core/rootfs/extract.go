package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
)

// Extract unpacks the tar stream r into dir, which must exist. It is the only
// tar-reading code in berth and treats the stream as hostile:
//
//   - Every file operation goes through an os.Root on dir, so no entry,
//     symlink or hard link can make it write outside dir; an entry whose path
//     would leave dir ("../x", or "link/x" where link points outside) is
//     refused with ErrUnsafeEntry naming the entry. Leading "/" is stripped
//     (absolute names are relative to dir).
//   - Symlinks are created as given; their targets are never followed while
//     extracting. Hard links must name a path inside dir.
//   - Character and block devices are refused (ErrUnsafeEntry): images must
//     not carry host devices. FIFOs are created.
//   - Modes (incl. setuid/setgid/sticky), owners (only when running as
//     root), and mtimes are applied; PAX xattrs are applied best effort.
//   - OCI whiteouts become overlayfs whiteouts: ".wh.NAME" becomes a 0/0
//     character device NAME (needs CAP_MKNOD), and ".wh..wh..opq" sets
//     trusted.overlay.opaque=y on its directory.
//
// An entry that replaces an existing non-directory removes it first. On
// error dir is left partly written; callers extract into a temporary
// directory. Extract stops at the tar end marker and does not read r further.
func Extract(ctx context.Context, r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer root.Close()
	x := extractor{root: root, chown: os.Geteuid() == 0}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("extract: %w: %v", ErrCorruptLayer, err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("extract %q: %w", hdr.Name, err)
		}
	}
	// Directory mtimes last: creating children changed them.
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		x.setTimes(d.name, d.mtime)
	}
	return nil
}

type dirTime struct {
	name  string
	mtime time.Time
}

type extractor struct {
	root  *os.Root
	chown bool
	dirs  []dirTime
}

// cleanPath makes a tar name relative to the root and refuses one that
// climbs out of it. "" means the root itself.
func cleanPath(name string) (string, error) {
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("%w: path %q escapes the layer", ErrUnsafeEntry, name)
	}
	if p == "." {
		return "", nil
	}
	return p, nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	name, err := cleanPath(hdr.Name)
	if err != nil {
		return err
	}
	dirName, base := path.Split(name)
	dirName = strings.TrimSuffix(dirName, "/")
	if dirName != "" {
		if err := x.root.MkdirAll(dirName, 0o755); err != nil {
			return unsafeIfEscape(err)
		}
	}

	// Whiteouts.
	if strings.HasPrefix(base, whiteoutPrefix) {
		switch {
		case base == whiteoutOpaque:
			return x.setOpaque(dirName)
		case strings.HasPrefix(base, whiteoutMeta):
			return nil // other aufs metadata (.wh..wh.plnk etc.): nothing to do
		default:
			hidden := strings.TrimPrefix(base, whiteoutPrefix)
			if hidden == "" || hidden == "." || hidden == ".." {
				return fmt.Errorf("%w: whiteout %q names no file", ErrUnsafeEntry, hdr.Name)
			}
			target := path.Join(dirName, hidden)
			if err := x.removeExisting(target); err != nil {
				return err
			}
			return x.mknodAt(target, unix.S_IFCHR|0o000, 0)
		}
	}

	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("%w: the layer root must be a directory", ErrUnsafeEntry)
		}
		name = "."
	}
	mode := hdr.FileInfo().Mode()
	switch hdr.Typeflag {
	case tar.TypeDir:
		fi, err := x.root.Lstat(name)
		if err == nil && !fi.IsDir() {
			if err := x.removeExisting(name); err != nil {
				return err
			}
			err = os.ErrNotExist
		}
		if err != nil {
			if err := x.root.Mkdir(name, 0o700); err != nil {
				return unsafeIfEscape(err)
			}
		}
		if err := x.root.Chmod(name, mode); err != nil {
			return unsafeIfEscape(err)
		}
		x.dirs = append(x.dirs, dirTime{name, hdr.ModTime})
	case tar.TypeReg, tar.TypeRegA:
		if err := x.removeExisting(name); err != nil {
			return err
		}
		f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return unsafeIfEscape(err)
		}
		_, err = io.Copy(f, r)
		if err == nil {
			err = f.Chmod(mode)
		}
		if err == nil {
			x.setXattrsFd(int(f.Fd()), hdr)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := x.removeExisting(name); err != nil {
			return err
		}
		if err := x.root.Symlink(hdr.Linkname, name); err != nil {
			return unsafeIfEscape(err)
		}
	case tar.TypeLink:
		target, err := cleanPath(hdr.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("%w: hard link to %q points outside the layer", ErrUnsafeEntry, hdr.Linkname)
		}
		if err := x.removeExisting(name); err != nil {
			return err
		}
		if err := x.root.Link(target, name); err != nil {
			return unsafeIfEscape(err)
		}
		return nil // a hard link shares the target's metadata
	case tar.TypeFifo:
		if err := x.removeExisting(name); err != nil {
			return err
		}
		if err := x.mknodAt(name, unix.S_IFIFO|uint32(mode.Perm()), 0); err != nil {
			return err
		}
	case tar.TypeChar, tar.TypeBlock:
		return fmt.Errorf("%w: device node (%d:%d); images must not carry devices", ErrUnsafeEntry, hdr.Devmajor, hdr.Devminor)
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("%w: unsupported tar entry type %q", ErrCorruptLayer, hdr.Typeflag)
	}
	if x.chown {
		if err := x.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return unsafeIfEscape(err)
		}
		if hdr.Typeflag != tar.TypeSymlink && mode&(os.ModeSetuid|os.ModeSetgid) != 0 {
			// chown clears setuid/setgid; apply the mode again.
			if err := x.root.Chmod(name, mode); err != nil {
				return unsafeIfEscape(err)
			}
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		x.setTimes(name, hdr.ModTime)
	}
	return nil
}

// removeExisting removes whatever is at name (a directory recursively) so a
// new entry can take its place.
func (x *extractor) removeExisting(name string) error {
	fi, err := x.root.Lstat(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return unsafeIfEscape(err)
	}
	if fi.IsDir() {
		return unsafeIfEscape(x.root.RemoveAll(name))
	}
	return unsafeIfEscape(x.root.Remove(name))
}

// withParent opens name's parent directory inside the root (never leaving
// it) and calls fn with its fd and name's last element.
func (x *extractor) withParent(name string, fn func(fd int, base string) error) error {
	dir, base := path.Split(name)
	if dir == "" {
		dir = "."
	}
	d, err := x.root.Open(dir)
	if err != nil {
		return unsafeIfEscape(err)
	}
	defer d.Close()
	return fn(int(d.Fd()), base)
}

func (x *extractor) mknodAt(name string, mode uint32, dev int) error {
	return x.withParent(name, func(fd int, base string) error {
		if err := unix.Mknodat(fd, base, mode, dev); err != nil {
			return fmt.Errorf("mknod %s: %w", name, err)
		}
		return nil
	})
}

// setTimes sets mtime (and atime) without following a final symlink. Best
// effort: a failure leaves the extraction time.
func (x *extractor) setTimes(name string, mtime time.Time) {
	if mtime.IsZero() {
		return
	}
	ts := unix.NsecToTimespec(mtime.UnixNano())
	if name == "." {
		name = ""
	}
	_ = x.withParent(name, func(fd int, base string) error {
		if base == "" {
			base = "."
		}
		return unix.UtimesNanoAt(fd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	})
}

func (x *extractor) setOpaque(dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := x.root.Open(dir)
	if err != nil {
		return unsafeIfEscape(err)
	}
	defer d.Close()
	if err := unix.Fsetxattr(int(d.Fd()), opaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("mark %s opaque: %w", dir, err)
	}
	return nil
}

// setXattrsFd applies the entry's SCHILY.xattr records, best effort.
func (x *extractor) setXattrsFd(fd int, hdr *tar.Header) {
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			_ = unix.Fsetxattr(fd, name, []byte(v), 0)
		}
	}
}

// unsafeIfEscape marks os.Root's "path escapes from parent" errors as
// ErrUnsafeEntry.
func unsafeIfEscape(err error) error {
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "escapes from parent") {
		return fmt.Errorf("%w: %v", ErrUnsafeEntry, err)
	}
	return err
}
