package fsutil

import (
	"fmt"
	"io"
	"os"
)

// CopyFile copies the content of src to dst with exactly perm, replacing
// dst the way WriteFile does: a crash leaves the old dst or a full copy.
// dst's directory must exist. src is only read.
func CopyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	return WriteFileFrom(dst, perm, func(w io.Writer) error {
		if _, err := io.Copy(w, in); err != nil {
			return fmt.Errorf("copy %s to %s: %w", src, dst, err)
		}
		return nil
	})
}

// LinkOrCopy makes dst a hard link to src when it can, which is instant and
// takes no space; a link shares src's inode, so it keeps src's mode and
// perm is not applied. When linking fails (dst exists, src is on another
// file system, or the file system refuses links) it falls back to
// CopyFile(src, dst, perm). Use it only where dst will not be written to,
// since a write through a link changes src too.
func LinkOrCopy(src, dst string, perm os.FileMode) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return CopyFile(src, dst, perm)
}
