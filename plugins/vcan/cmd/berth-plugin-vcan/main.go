// Command berth-plugin-vcan is the berth device plugin for the userspace
// virtual CAN bus (package plugins/vcan). berthd starts it; run by hand it
// says so and exits.
package main

import (
	"fmt"
	"os"

	"github.com/berth-io/berth/devices/sdk"
	"github.com/berth-io/berth/plugins/vcan"
)

func main() {
	log := sdk.NewLogger(vcan.Name)
	p := vcan.New(log)
	err := sdk.Serve(sdk.Plugin{Base: p, CAN: p}, log)
	p.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
