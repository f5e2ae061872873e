// Package hil owns the hardware-in-the-loop VM: it fetches Debian's stock
// kernel and the modules berth's device tests need (FetchKernel), builds a
// cached busybox initramfs for it (BuildBase), and boots it under qemu to
// run one static test binary, returning the binary's output and exit status
// (VM.Run). cmd/berth-hil wraps it as a `go test -exec` program; the
// board-support/qemu-x86_64 README describes the guest.
package hil
