// Package hil owns the hardware-in-the-loop VM: it fetches Debian's stock
// kernel and the modules berth's device tests need (FetchKernel), builds a
// cached busybox initramfs for it (BuildBase), and boots it under qemu to
// run one static test binary, returning the binary's output and exit status
// (VM.Run). cmd/berth-hil wraps it as a `go test -exec` program; the
// board-support/qemu-x86_64 README describes the guest.
//
// The guest. The base initramfs holds static busybox, the modules, and
// host programs with their ELF interpreter and shared libraries
// (DefaultTools: runc, candump, cansend, cangw, iproute2's ip), each at its
// host path; HostBinary finds what a host program needs, as the host's
// loader would. The base is keyed by every file's path, size and mtime, so
// a changed or added program rebuilds it. /init chroots into a bind mount
// of the root moved onto / (runc cannot pivot_root away from the
// initramfs's own mount; nothing is copied), then mounts proc, sys,
// devtmpfs, devpts, /dev/shm, mqueue, cgroup2, tmpfs /tmp and /run, loads
// the modules, sets lo up and runs the test in /hil/pkg with PATH
// (GuestPath) starting at /hil/bin.
//
// What a test ships. Each run appends a second cpio to the base: the test
// binary, its package's testdata/, and what the package's hil.hcl
// (Manifest) names: Go main packages built static into /hil/bin (go's
// build cache makes a rebuild of unchanged programs cost a fraction of a
// second), host programs with their libraries, and host files by name in
// /hil/pkg. A package without hil.hcl gets the binary and testdata only.
// The archive is not compressed: under TCG the guest unpacks an
// uncompressed cpio faster than it inflates a gzip one, and each run's
// initramfs is written once and read once.
package hil
