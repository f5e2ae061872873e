package network

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// netnsIno is the inode of the calling thread's network namespace; 0 if
// it cannot be read. It may run on another goroutine than the test's.
func netnsIno() uint64 {
	var st unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), &st) != nil {
		return 0
	}
	return st.Ino
}

// InNewNetNS and InNetNS run f in another namespace and leave the caller
// where it was; InNetNS("") runs f here; an error of f comes back as it is.
func TestInNetNS(t *testing.T) {
	requireRoot(t)
	path := testNS(t, "ns")
	var want unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		t.Fatal(err)
	}

	// The test's goroutine may move between threads; all of them are in
	// the test's namespace.
	here := netnsIno()
	var inside, fresh uint64
	if err := InNetNS(path, func() error { inside = netnsIno(); return nil }); err != nil {
		t.Fatal(err)
	}
	if inside != want.Ino {
		t.Errorf("InNetNS ran in namespace %d, want %d (the one at %s)", inside, want.Ino, path)
	}
	if err := InNewNetNS(func() error { fresh = netnsIno(); return nil }); err != nil {
		t.Fatal(err)
	}
	if fresh == here || fresh == inside {
		t.Errorf("InNewNetNS ran in namespace %d, want a new one (here %d, %s %d)", fresh, here, path, inside)
	}
	if err := InNetNS("", func() error { inside = netnsIno(); return nil }); err != nil || inside != here {
		t.Errorf(`InNetNS("") ran in %d (%v), want here, %d`, inside, err, here)
	}
	if got := netnsIno(); got != here {
		t.Errorf("the caller is in namespace %d afterwards, want %d", got, here)
	}
	sentinel := os.ErrDeadlineExceeded
	if err := InNetNS(path, func() error { return sentinel }); err != sentinel {
		t.Errorf("InNetNS returned %v, want f's error as it is", err)
	}
	if err := InNetNS(filepath.Join(t.TempDir(), "missing"), func() error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("InNetNS of a missing namespace: %v, want not-exist", err)
	}
}
