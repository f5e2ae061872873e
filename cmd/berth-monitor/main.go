// Command berth-monitor is the per-container monitor berthd starts; see
// package core/monitor.
package main

import (
	"os"

	"github.com/berth-io/berth/core/monitor"
)

func main() {
	os.Exit(monitor.Main(os.Args))
}
