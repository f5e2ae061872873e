package exepages

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// rssFile returns this process's RssFile in KiB.
func rssFile(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssFile:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// Releasing the start-up pages shrinks the mapped file pages of a running
// process, which carries on (its code is mapped back as it runs).
func TestRelease(t *testing.T) {
	before := rssFile(t)
	if err := Release(); err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("RssFile %d KiB before, %d KiB after", before, after)
	if after >= before {
		t.Errorf("RssFile %d KiB after release, %d KiB before: want less", after, before)
	}
	if err := Release(); err != nil {
		t.Fatalf("second release: %v", err)
	}
}

// TestReleaseKeepsWrittenPages checks that a read-only mapping of the
// executable with pages the process wrote (as a PIE's relocated RELRO
// data is) keeps them: DONTNEED would reset them to the file's bytes.
func TestReleaseKeepsWrittenPages(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := os.Getpagesize()
	b, err := unix.Mmap(int(f.Fd()), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	copy(b, "relocated")
	if err := unix.Mprotect(b, unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	if err := Release(); err != nil {
		t.Fatal(err)
	}
	if got := string(b[:9]); got != "relocated" {
		t.Errorf("a written r--p page of the executable reads %q after Release, want %q", got, "relocated")
	}
}

func TestExeMappings(t *testing.T) {
	smaps := `00400000-00800000 r-xp 00000000 fe:01 42                                 /usr/bin/berth d
Size:               4096 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00800000-00900000 r--p 00400000 fe:01 42                                 /usr/bin/berth d
Size:               1024 kB
Anonymous:             8 kB
VmFlags: rd mr mw me
00900000-00a00000 rw-p 00500000 fe:01 42                                 /usr/bin/berth d
Anonymous:            64 kB
7f000000-7f001000 r--p 00000000 fe:01 43                                 /usr/lib/other
Anonymous:             0 kB
`
	got, err := exeMappings([]byte(smaps), "/usr/bin/berth d")
	if err != nil {
		t.Fatal(err)
	}
	want := []mapping{{0x400000, 0x800000, false}, {0x800000, 0x900000, true}}
	if !slices.Equal(got, want) {
		t.Errorf("exeMappings = %+v, want %+v", got, want)
	}
	if _, err := exeMappings([]byte("zz-yy r-xp 0 fe:01 42 /x\n"), "/x"); err == nil {
		t.Error("a bad address: nil error")
	}
}
