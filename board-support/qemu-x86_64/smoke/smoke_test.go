package smoke

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"go.einride.tech/can"
	"go.einride.tech/can/pkg/socketcan"
	"golang.org/x/sys/unix"
)

// missing skips the test on a host that lacks what the HIL VM provides,
// and fails it inside the VM, where the lack is a harness bug.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("BERTH_HIL") != "" {
		t.Fatalf("in the HIL VM: %s", msg)
	}
	t.Skipf("%s (run it in the HIL VM: make hil)", msg)
}

// addVcan creates and brings up a vcan interface, removed at cleanup.
func addVcan(t *testing.T, name string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a vcan interface")
	}
	link := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: name}, LinkType: "vcan"}
	if err := netlink.LinkAdd(link); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			missing(t, "kernel has no vcan: ip link add %s type vcan: %v", name, err)
		}
		t.Fatalf("ip link add %s type vcan: %v", name, err)
	}
	t.Cleanup(func() {
		if err := netlink.LinkDel(link); err != nil {
			t.Errorf("ip link del %s: %v", name, err)
		}
	})
	if err := netlink.LinkSetUp(link); err != nil {
		t.Fatalf("ip link set %s up: %v", name, err)
	}
}

func TestVcanFrameRoundTrip(t *testing.T) {
	const ifname = "vcansmoke0"
	addVcan(t, ifname)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	rx, err := socketcan.DialContext(ctx, "can", ifname)
	if err != nil {
		t.Fatalf("dial %s: %v", ifname, err)
	}
	defer rx.Close()
	tx, err := socketcan.DialContext(ctx, "can", ifname)
	if err != nil {
		t.Fatalf("dial %s: %v", ifname, err)
	}
	defer tx.Close()

	tests := []can.Frame{
		{ID: 0x123, Length: 4, Data: can.Data{0xde, 0xad, 0xbe, 0xef}},
		{ID: 0x1abcdef, IsExtended: true, Length: 8, Data: can.Data{1, 2, 3, 4, 5, 6, 7, 8}},
		{ID: 0x7ff, IsRemote: true, Length: 2},
	}
	recv := socketcan.NewReceiver(rx)
	for _, want := range tests {
		t.Run(want.String(), func(t *testing.T) {
			if err := socketcan.NewTransmitter(tx).TransmitFrame(ctx, want); err != nil {
				t.Fatalf("send %v: %v", want, err)
			}
			if err := rx.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatalf("set read deadline: %v", err)
			}
			if !recv.Receive() {
				t.Fatalf("receive on %s: %v", ifname, recv.Err())
			}
			if got := recv.Frame(); got != want {
				t.Errorf("received %v, want %v", got, want)
			}
		})
	}
}

// stubAdapterName is the adapter name the i2c-stub module registers.
const stubAdapterName = "SMBus stub driver"

// stubDevice returns the /dev/i2c-N node of the i2c-stub adapter; a real
// adapter is never touched.
func stubDevice(t *testing.T) string {
	t.Helper()
	names, _ := filepath.Glob("/sys/class/i2c-dev/i2c-*/name")
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err == nil && strings.TrimSpace(string(data)) == stubAdapterName {
			return "/dev/" + filepath.Base(filepath.Dir(n))
		}
	}
	missing(t, "no %q adapter (modprobe i2c-dev; modprobe i2c-stub chip_addr=0x48)", stubAdapterName)
	return ""
}

// Linux i2c-dev ioctls and SMBus constants (linux/i2c-dev.h, linux/i2c.h).
const (
	ioctlI2CSlave    = 0x0703
	ioctlI2CSMBus    = 0x0720
	smbusRead        = 1
	smbusWrite       = 0
	smbusByteData    = 2
	stubChipAddr     = 0x48
	smbusBlockLength = 34
)

// smbusIoctlData is struct i2c_smbus_ioctl_data.
type smbusIoctlData struct {
	readWrite uint8
	command   uint8
	size      uint32
	data      *[smbusBlockLength]byte
}

func smbus(fd int, readWrite, command uint8, data *[smbusBlockLength]byte) error {
	args := smbusIoctlData{readWrite: readWrite, command: command, size: smbusByteData, data: data}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlI2CSMBus, uintptr(unsafe.Pointer(&args)))
	if errno != 0 {
		return errno
	}
	return nil
}

func TestI2CStubByteData(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: opens /dev/i2c-N")
	}
	dev := stubDevice(t)
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", dev, err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, ioctlI2CSlave, stubChipAddr); err != nil {
		t.Fatalf("%s: set slave address %#x: %v", dev, stubChipAddr, err)
	}

	tests := []struct {
		reg, value uint8
	}{
		{0x00, 0x5a},
		{0x10, 0xa5},
		{0xff, 0x01},
	}
	for _, tc := range tests {
		var w [smbusBlockLength]byte
		w[0] = tc.value
		if err := smbus(fd, smbusWrite, tc.reg, &w); err != nil {
			t.Fatalf("%s: write byte %#x to register %#x: %v", dev, tc.value, tc.reg, err)
		}
	}
	for _, tc := range tests {
		var r [smbusBlockLength]byte
		if err := smbus(fd, smbusRead, tc.reg, &r); err != nil {
			t.Fatalf("%s: read register %#x: %v", dev, tc.reg, err)
		}
		if r[0] != tc.value {
			t.Errorf("%s: register %#x = %#x, want %#x", dev, tc.reg, r[0], tc.value)
		}
	}
}
