package exepages

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Release drops this process's mappings of its own binary's code and
// read-only data (the r-xp and r--p mappings of /proc/self/exe) with
// madvise(MADV_DONTNEED). Those pages are never written, so nothing is
// lost: they stay in the page cache, and the kernel maps back, with a
// minor fault, each one the process runs or reads again. What the process
// ran only to start (package init, config decoding, handshakes) and the
// neighbours the kernel's fault-around mapped with it leave its resident
// set, which then shows the pages it keeps using. Call it once the
// process is up; calling it again is harmless.
func Release() error {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("release executable pages: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("release executable pages: %w", err)
	}
	for _, line := range strings.Split(string(maps), "\n") {
		// address perms offset dev inode path (the path may hold spaces)
		f := strings.SplitN(line, " ", 6)
		if len(f) < 6 || strings.TrimLeft(f[5], " ") != exe || (f[1] != "r-xp" && f[1] != "r--p") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return fmt.Errorf("release executable pages: bad line in /proc/self/maps: %q", line)
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("release executable pages: madvise %s: %w", f[0], errno)
		}
	}
	return nil
}
