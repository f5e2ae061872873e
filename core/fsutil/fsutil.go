// Package fsutil owns crash-safe file writes: replacing a file through a
// synced temporary file and a rename, syncing the directory that holds it,
// and copying a file the same way. Every berth store that keeps state on
// disk (images, root file systems, bundles, network state, generations)
// writes through it, so a power cut on an ECU leaves either the old file or
// the new one, never a torn mix.
package fsutil

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every temporary file this package creates.
// A temporary file for dir/name is dir/TempPrefix+name+"-"+random; it lives
// only until the rename that replaces name, or until the write fails. After
// a crash one may be left behind: a store that wants to clean up at start
// removes the entries of its directories that have this prefix.
const TempPrefix = ".tmp-"

// maxBase bounds the part of the target's name copied into a temporary
// file's name, so the temporary name stays under NAME_MAX (255 bytes).
const maxBase = 200

// WriteFile writes data to path through a synced temporary file in the same
// directory and a rename, then syncs the directory: a crash leaves the old
// file or the new one, never a mix. The file gets exactly perm (the umask
// does not apply). The directory must exist. On error path is unchanged and
// the temporary file is removed.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFileFrom(path, perm, func(w io.Writer) error {
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	})
}

// WriteFileFrom is WriteFile for content that is streamed rather than held:
// write is called once with the temporary file and must write the whole
// content to it. If write returns an error, path is left unchanged, the
// temporary file is removed and write's error is returned as it is, so a
// caller can abort a write it finds bad (a digest mismatch, a cancelled
// context) and keep its own error. write must not keep w after it returns.
func WriteFileFrom(path string, perm os.FileMode, write func(w io.Writer) error) error {
	return replace(path, perm, true, write)
}

// ReplaceFile is WriteFile without the syncs: readers and a crash of the
// process see the old file or the new one, but a power cut may lose the
// new one. It is for files that describe what runs now and mean nothing
// after a reboot (a container's bundle, its monitor's pid and exit files),
// where an fsync would only slow a container's start.
func ReplaceFile(path string, data []byte, perm os.FileMode) error {
	return replace(path, perm, false, func(w io.Writer) error {
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	})
}

// replace writes path through a temporary file and a rename, syncing both
// when durable.
func replace(path string, perm os.FileMode, durable bool, write func(w io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if len(base) > maxBase {
		base = base[:maxBase]
	}
	f, err := os.CreateTemp(dir, TempPrefix+base+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close() // a second Close after a failed rename is harmless
			os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	done = true
	if !durable {
		return nil
	}
	return SyncDir(filepath.Dir(path))
}

// CreateFile writes data to a new file at path (one that exists is an
// error) and syncs its content, not its directory: for the files of a fresh
// directory that the caller syncs once (SyncDir) and renames into place
// whole, so each file costs one sync instead of two.
func CreateFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm) // exactly perm: the umask does not apply
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs the directory dir, so that a rename, create or remove of
// one of its entries survives a crash. Call it after such a change when the
// change must be durable before going on.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
