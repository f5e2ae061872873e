# What berth-hil ships into the VM for TestPaths, besides the test binary
# (see core/hil.Manifest).

# The socketcan plugin the board names, built static into /hil/bin (the
# board's bare plugin name is looked up in PATH).
go = ["github.com/berth-io/berth/plugins/socketcan/cmd/berth-plugin-socketcan"]

# The board whose can0 is vcan0, in the test's working directory.
files = {
  "board.hcl" = "../board.hcl"
}
