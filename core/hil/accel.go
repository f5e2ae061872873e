package hil

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// kvmProbeTimeout bounds the probe boot; a working KVM boots in a second or two.
const kvmProbeTimeout = 15 * time.Second

// ChooseAccel returns AccelKVM when /dev/kvm can be opened and a probe
// guest (busybox, which must be static, running `true`) reports its status
// under KVM in time; otherwise AccelTCG. KVM that is present but hangs at
// boot is known on some hosts, hence the probe. The answer is cached in
// cacheRoot per host kernel release, so the probe runs once per host kernel.
func ChooseAccel(ctx context.Context, vm VM, busybox, cacheRoot string) string {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		vm.logger().Debug("no usable /dev/kvm; using TCG", "err", err)
		return AccelTCG
	}
	f.Close()

	stamp := accelStamp(cacheRoot)
	if data, err := os.ReadFile(stamp); err == nil {
		if a := strings.TrimSpace(string(data)); a == AccelKVM || a == AccelTCG {
			return a
		}
	}

	vm.Accel = AccelKVM
	pctx, cancel := context.WithTimeout(ctx, kvmProbeTimeout)
	defer cancel()
	start := time.Now()
	res, err := vm.Run(pctx, Payload{Binary: busybox, Args: []string{"true"}}, io.Discard)
	accel := AccelKVM
	if err != nil || res.ExitCode != 0 {
		accel = AccelTCG
		vm.logger().Info("KVM probe failed; using TCG", "err", err, "status", res.ExitCode, "elapsed", time.Since(start))
		if errors.Is(ctx.Err(), context.Canceled) {
			return accel // interrupted: do not remember
		}
	} else {
		vm.logger().Debug("KVM probe booted", "elapsed", time.Since(start))
	}
	_ = os.WriteFile(stamp, []byte(accel+"\n"), 0o644)
	return accel
}

// DistrustKVM records that KVM misbehaves on this host (a guest stalled
// under it, see ErrGuestStalled), so that ChooseAccel answers TCG from now
// on, for this host kernel.
func DistrustKVM(cacheRoot string) error {
	return os.WriteFile(accelStamp(cacheRoot), []byte(AccelTCG+"\n"), 0o644)
}

// accelStamp is the file that caches ChooseAccel's answer for the running
// host kernel.
func accelStamp(cacheRoot string) string {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	return filepath.Join(cacheRoot, "accel-"+unix.ByteSliceToString(uts.Release[:]))
}
