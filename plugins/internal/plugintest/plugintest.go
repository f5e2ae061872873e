// Package plugintest is what the built-in plugins' tests share to run a
// plugin as berthd does: [Build] makes the binary the way `make build`
// ships it, and [ReadRSS] reads a running plugin's resident memory. It is
// for tests only; nothing in a plugin imports it.
package plugintest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// MaxIdleRSS is the resident memory a built-in plugin may use once
// started and configured, before it carries traffic.
const MaxIdleRSS = 15 << 20

// ErrNoGo: the go command is not on PATH (as in the HIL VM, which runs
// test binaries only), so a plugin binary cannot be built.
var ErrNoGo = errors.New("the go command is not on PATH")

// Build builds the main package pkg (an import path or a path relative
// to the working directory) into dir, as the Makefile's build target does
// (CGO_ENABLED=0, -trimpath, -ldflags "-s -w"), and returns the binary's
// path: dir/<last element of pkg>.
func Build(pkg, dir string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, ErrNoGo)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", pkg, err, msg)
	}
	return out, nil
}

// RSS is a process's resident memory in bytes, from /proc/PID/status.
type RSS struct {
	Total int64 // VmRSS
	Anon  int64 // RssAnon: heap, stacks
	File  int64 // RssFile: mapped file pages, mostly the binary's own code and data
}

// String prints the sizes in KiB.
func (r RSS) String() string {
	return fmt.Sprintf("VmRSS %d KiB (anon %d KiB, file %d KiB)", r.Total>>10, r.Anon>>10, r.File>>10)
}

// ReadRSS reads the resident memory of process pid.
func ReadRSS(pid int) (RSS, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return RSS{}, fmt.Errorf("rss of pid %d: %w", pid, err)
	}
	var r RSS
	fields := map[string]*int64{"VmRSS:": &r.Total, "RssAnon:": &r.Anon, "RssFile:": &r.File}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[2] != "kB" || fields[f[0]] == nil {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return RSS{}, fmt.Errorf("rss of pid %d: %s: %w", pid, sc.Text(), err)
		}
		*fields[f[0]] = kb << 10
	}
	if r.Total == 0 {
		return RSS{}, fmt.Errorf("rss of pid %d: no VmRSS in /proc/%d/status", pid, pid)
	}
	return r, nil
}
