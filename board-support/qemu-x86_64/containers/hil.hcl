# What berth-hil ships into the VM for these tests, besides the test binary
# (see core/hil.Manifest). Every byte is copied into the guest on each boot.

# berth's programs, built static into /hil/bin (first in the guest's PATH);
# mkimage builds the busybox image in the guest from the guest's busybox.
go = [
  "github.com/berth-io/berth/cmd/berthd",
  "github.com/berth-io/berth/cmd/berth",
  "github.com/berth-io/berth/cmd/berth-monitor",
  "github.com/berth-io/berth/plugins/socketcan/cmd/berth-plugin-socketcan",
  "github.com/berth-io/berth/cmd/mkimage",
]

# The board berthd runs in the VM, in the test's working directory.
files = {
  "board.hcl" = "../board.hcl"
}
