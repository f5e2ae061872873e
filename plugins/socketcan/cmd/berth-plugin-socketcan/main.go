// Command berth-plugin-socketcan is the berth device plugin for kernel
// CAN interfaces (package plugins/socketcan). berthd starts it; run by
// hand it says so and exits.
package main

import (
	"fmt"
	"os"

	"github.com/berth-io/berth/devices/sdk"
	"github.com/berth-io/berth/plugins/socketcan"
)

func main() {
	log := sdk.NewLogger(socketcan.Name)
	p := socketcan.New(log)
	if err := sdk.Serve(sdk.Plugin{Base: p, CAN: p}, log); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
