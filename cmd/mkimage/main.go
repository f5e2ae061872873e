// Command mkimage builds berth's demo and test images from source as OCI
// archives, reproducibly: busybox (from Debian's busybox-static), a
// base-config image, and the kvdb, sensor, dashboard and cantool programs under
// testdata/images. No binary file is committed to the repository.
//
//	go run ./cmd/mkimage -o DIR [-only busybox,kvdb]
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}
