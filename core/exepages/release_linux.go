package exepages

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Release drops this process's mappings of its own binary's code and
// read-only data (the r-xp and r--p mappings of /proc/self/exe) with
// madvise(MADV_DONTNEED). It leaves out a mapping with any page the
// process wrote (smaps counts it Anonymous: the relocated RELRO data of a
// PIE or cgo build), which DONTNEED would reset to the file's bytes. The
// rest is never written, so nothing is lost: those pages stay in the page
// cache, and the kernel maps back, with a minor fault, each one the
// process runs or reads again. What the process ran only to start
// (package init, config decoding, handshakes) or for a burst of work, and
// the neighbours the kernel's fault-around mapped with it, leave its
// resident set, which then shows the pages it keeps using. Calling it
// again is harmless.
func Release() error {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("release executable pages: %w", err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return fmt.Errorf("release executable pages: %w", err)
	}
	ms, err := exeMappings(smaps, exe)
	if err != nil {
		return fmt.Errorf("release executable pages: %w", err)
	}
	for _, m := range ms {
		if m.written {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("release executable pages: madvise %x-%x: %w", m.start, m.end, errno)
		}
	}
	return nil
}

// mapping is one read-only private mapping of the executable.
type mapping struct {
	start, end uint64
	written    bool // some page is the process's own copy (Anonymous > 0)
}

// exeMappings reads the r-xp and r--p mappings of the file exe from the
// text of /proc/self/smaps.
func exeMappings(smaps []byte, exe string) ([]mapping, error) {
	var out []mapping
	var cur *mapping
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		line := sc.Text()
		if key, value, ok := strings.Cut(line, ":"); ok && !strings.Contains(key, " ") && !strings.Contains(key, "-") {
			// "Anonymous:   4 kB" and the other fields of the mapping above
			if cur != nil && key == "Anonymous" && strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")) != "0" {
				cur.written = true
			}
			continue
		}
		cur = nil
		// address perms offset dev inode path (the path may hold spaces)
		f := strings.SplitN(line, " ", 6)
		if len(f) < 6 || strings.TrimLeft(f[5], " ") != exe || (f[1] != "r-xp" && f[1] != "r--p") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("bad line in /proc/self/smaps: %q", line)
		}
		out = append(out, mapping{start: start, end: end})
		cur = &out[len(out)-1]
	}
	return out, sc.Err()
}
