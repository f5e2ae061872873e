package hil

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// cpio mode bits (the newc format uses the classic octal S_IF* values).
const (
	cpioDir     = 0o040000
	cpioFile    = 0o100000
	cpioSymlink = 0o120000
	cpioCharDev = 0o020000
)

// CPIOWriter writes a newc ("070701") cpio archive, the format the Linux
// kernel unpacks as an initramfs. Parent directories are created on demand,
// so entries may be added in any order a caller likes; the archive is valid
// once Close has written the trailer. The writer does not own w and never
// closes it. Several archives written one after another form a valid
// initramfs: the kernel unpacks them in order, later entries overwriting
// earlier ones.
type CPIOWriter struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

// NewCPIOWriter returns a writer that appends a cpio archive to w.
func NewCPIOWriter(w io.Writer) *CPIOWriter {
	return &CPIOWriter{w: w, ino: 1, dirs: map[string]bool{".": true, "": true}}
}

// Dir adds a directory (and any missing parents, with mode 0755). Adding the
// same directory twice writes it once.
func (c *CPIOWriter) Dir(name string, perm fs.FileMode) error {
	name, err := cleanName(name)
	if err != nil {
		return err
	}
	return c.dir(name, perm)
}

func (c *CPIOWriter) dir(name string, perm fs.FileMode) error {
	if c.dirs[name] {
		return nil
	}
	if err := c.dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	c.dirs[name] = true
	return c.header(name, cpioDir|uint32(perm.Perm()), 0, 0, 0)
}

// File adds a regular file of size bytes read from r.
func (c *CPIOWriter) File(name string, perm fs.FileMode, size int64, r io.Reader) error {
	name, err := c.parent(name)
	if err != nil {
		return err
	}
	if size < 0 || size > 0xffffffff {
		return fmt.Errorf("cpio %s: size %d out of range for newc", name, size)
	}
	if err := c.header(name, cpioFile|uint32(perm.Perm()), size, 0, 0); err != nil {
		return err
	}
	n, err := io.CopyN(c.w, r, size)
	if err != nil {
		c.err = fmt.Errorf("cpio %s: wrote %d of %d bytes: %w", name, n, size, err)
		return c.err
	}
	return c.pad(size)
}

// Bytes adds a regular file with the given content.
func (c *CPIOWriter) Bytes(name string, perm fs.FileMode, data []byte) error {
	return c.File(name, perm, int64(len(data)), bytes.NewReader(data))
}

// Symlink adds a symbolic link name pointing at target.
func (c *CPIOWriter) Symlink(name, target string) error {
	name, err := c.parent(name)
	if err != nil {
		return err
	}
	if err := c.header(name, cpioSymlink|0o777, int64(len(target)), 0, 0); err != nil {
		return err
	}
	if _, err := io.WriteString(c.w, target); err != nil {
		c.err = fmt.Errorf("cpio %s: %w", name, err)
		return c.err
	}
	return c.pad(int64(len(target)))
}

// CharDev adds a character device node.
func (c *CPIOWriter) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	name, err := c.parent(name)
	if err != nil {
		return err
	}
	return c.header(name, cpioCharDev|uint32(perm.Perm()), 0, major, minor)
}

// Close writes the trailer. It does not close the underlying writer.
func (c *CPIOWriter) Close() error {
	if c.err != nil {
		return c.err
	}
	return c.header("TRAILER!!!", 0, 0, 0, 0)
}

// parent cleans name and makes sure its directory exists in the archive.
func (c *CPIOWriter) parent(name string) (string, error) {
	name, err := cleanName(name)
	if err != nil {
		return "", err
	}
	return name, c.dir(path.Dir(name), 0o755)
}

func (c *CPIOWriter) header(name string, mode uint32, size int64, rmajor, rminor uint32) error {
	if c.err != nil {
		return c.err
	}
	ino := c.ino
	c.ino++
	nlink := 1
	if mode&cpioDir != 0 {
		nlink = 2
	}
	if name == "TRAILER!!!" {
		ino, nlink = 0, 1
	}
	// Fields: magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize (with the NUL), check.
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, len(name)+1, 0)
	if _, err := io.WriteString(c.w, hdr+name+"\x00"); err != nil {
		c.err = fmt.Errorf("cpio %s: %w", name, err)
		return c.err
	}
	return c.pad(int64(len(hdr) + len(name) + 1))
}

// pad writes the zero bytes that align the next record to 4 bytes.
func (c *CPIOWriter) pad(n int64) error {
	if rem := n % 4; rem != 0 {
		if _, err := c.w.Write(make([]byte, 4-rem)); err != nil {
			c.err = fmt.Errorf("cpio pad: %w", err)
			return c.err
		}
	}
	return nil
}

// cleanName turns name into the archive's relative form ("bin/sh") and
// refuses names that would escape the root.
func cleanName(name string) (string, error) {
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	if clean == "" || strings.Contains(name, "\x00") {
		return "", fmt.Errorf("cpio: invalid entry name %q", name)
	}
	return clean, nil
}
