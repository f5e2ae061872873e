package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-io/berth/core/rootfs"
	"github.com/berth-io/berth/core/stack"
)

// rss is a process's resident memory in KiB, and how much of it is
// anonymous (heap, stacks) and file-backed (the binary's pages).
type rss struct {
	KiB     int64 `json:"kib"`
	AnonKiB int64 `json:"anon_kib"`
	FileKiB int64 `json:"file_kib"`
}

func readRSS(pid int) (rss, error) {
	var m rss
	var err error
	for _, f := range []struct {
		key string
		dst *int64
	}{{"VmRSS", &m.KiB}, {"RssAnon", &m.AnonKiB}, {"RssFile", &m.FileKiB}} {
		if *f.dst, err = statusKiB(pid, f.key); err != nil {
			return m, err
		}
	}
	return m, nil
}

// rssKiB is the VmRSS of process pid, in KiB.
func rssKiB(pid int) (int64, error) { return statusKiB(pid, "VmRSS") }

// statusKiB is the field key of /proc/PID/status, a size in KiB.
func statusKiB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(v) // "12345 kB"
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("rss: no %s in /proc/%d/status", key, pid)
}

// monitorPids returns the berth-monitor processes serving containers under
// state: their command line is `berth-monitor run DIR`.
func monitorPids(state string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
		if len(args) >= 3 && filepath.Base(args[0]) == "berth-monitor" && args[1] == "run" &&
			strings.HasPrefix(args[2], state+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// monitorsRSS returns how many monitors serve the stack and their mean RSS.
func (b *bench) monitorsRSS() (int, int64, error) {
	pids := monitorPids(b.state)
	if len(pids) == 0 {
		return 0, 0, fmt.Errorf("no berth-monitor process found for %s", b.state)
	}
	var total int64
	for _, pid := range pids {
		kib, err := rssKiB(pid)
		if err != nil {
			return 0, 0, err
		}
		total += kib
	}
	return len(pids), total / int64(len(pids)), nil
}

// storage measures the disk the running stack's root file systems use:
// berthd's unpacked layers plus the containers' upper dirs, against the
// unique layers alone and against one copy of its layers per container.
// Sizes are allocated blocks, hard links counted once, as du counts them.
func (b *bench) storage(ctx context.Context) (storage, error) {
	var s storage
	root := filepath.Join(b.state, "rootfs")
	seen := map[[2]uint64]bool{}
	n, err := rootfs.DiskUsage(ctx, filepath.Join(root, "layers"), seen)
	if err != nil {
		return s, err
	}
	s.StoredBytes = n
	unique := map[string]bool{}
	for _, name := range containers {
		id := stack.ContainerID(stackName, name)
		upper, err := rootfs.DiskUsage(ctx, filepath.Join(root, "containers", id, "upper"), seen)
		if err != nil {
			return s, err
		}
		s.StoredBytes += upper
		s.UpperBytes += upper
		layers, err := b.containerLayers(id)
		if err != nil {
			return s, err
		}
		own := map[[2]uint64]bool{} // this container's own copy
		s.CopiesBytes += upper
		for _, l := range layers {
			n, err := rootfs.DiskUsage(ctx, l, own)
			if err != nil {
				return s, err
			}
			s.CopiesBytes += n
			unique[l] = true
		}
	}
	uniq := map[[2]uint64]bool{}
	for l := range unique {
		n, err := rootfs.DiskUsage(ctx, l, uniq)
		if err != nil {
			return s, err
		}
		s.UniqueLayerBytes += n
	}
	s.Layers = len(unique)
	return s, nil
}
