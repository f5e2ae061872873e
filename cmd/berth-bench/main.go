// Command berth-bench measures berth against the targets in README.md and
// prints each figure as a ratio against a baseline measured in the same run:
//
//   - cold start of a 5-container stack whose images are local, from the
//     start of the `berth up` process to all 5 running, against starting
//     the same bundles with the same OCI runtime directly (runc run -d);
//   - berthd's resident memory when idle, with no stack and with the stack
//     up, against the 20 MiB target (berth-monitor's RSS for information);
//   - the disk the 5 containers use, sharing their image layers, against
//     the unique layers' size and against one copy of every image each;
//   - CAN (can*.go): the broker's fan-out to 1 and 5 readers at 52,000
//     frames/s and as fast as they read, against one reader of the plugin
//     stream; the latency the broker adds at 2,000 frames/s, frame by
//     frame; and the idle RSS of a vcan plugin process, against 15 MiB.
//
// It needs root, the binaries of `make build` and the archives of
// `make images`; the CAN part alone (-only can) needs only
// berth-plugin-vcan in -bin, and no root:
//
//	go run ./cmd/berth-bench -bin bin -images build/images [-n 5] [-only stack|can] [-json] [-cpuprofile FILE]
//
// Each run starts its own berthd on fresh temporary state and run
// directories and a cgroup parent of its own, and removes all of it, stack,
// mounts and cgroups included, when it ends, also on failure; the CAN part
// starts its own plugin process on a private vcan hub and stops it. The
// exit code is 0 whether targets are met or not: the bench is a report,
// not a test.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "berth-bench:", err)
		os.Exit(1)
	}
}
