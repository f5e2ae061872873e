// Command berth is the command line of berth: it checks playbooks and drives
// berthd over its unix socket. See core/cli.
package main

import (
	"os"

	"github.com/berth-io/berth/core/cli"
)

func main() { os.Exit(cli.Main()) }
