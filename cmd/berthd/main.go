// Command berthd is berth's daemon: it runs stacks of containers described
// in HCL playbooks and serves the `berth` CLI on a unix socket.
package main

import (
	"fmt"
	"os"

	"github.com/berth-io/berth/core/daemon"
)

func main() {
	if err := daemon.Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		os.Exit(1)
	}
}
