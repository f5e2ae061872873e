// Command berth-hil runs a Go test binary inside a small qemu VM that boots
// Debian's stock kernel, for tests that need kernel devices this host may
// lack (vcan, vxcan, can-gw, i2c-dev, i2c-stub). It is a go test -exec
// wrapper:
//
//	CGO_ENABLED=0 go test -exec "go run ./cmd/berth-hil" ./plugins/socketcan
//
// go test's flags (-v, -run, -json, -timeout) reach the guest unchanged; the
// test's output and exit status come back. The package's testdata/ goes
// along, and what its hil.hcl names (Go programs built static, host
// programs, files; see core/hil.Manifest). `berth-hil -prepare` only
// fetches the kernel and builds the initramfs (both cached, see core/hil).
//
// Environment: BERTH_HIL_CACHE (cache root, default $XDG_CACHE_HOME/berth/hil),
// BERTH_HIL_ACCEL (auto, tcg or kvm; default auto), BERTH_HIL_QEMU,
// BERTH_HIL_BUSYBOX (a static busybox, default /bin/busybox),
// BERTH_HIL_VERBOSE=1 (log each step to stderr).
package main

import (
	"fmt"
	"os"
)

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-hil:", err)
	}
	os.Exit(code)
}
