package hil

import "errors"

// Sentinel errors of the harness. Callers test them with errors.Is; the
// returned errors wrap them with the operation and, for guest failures,
// the tail of the guest's console (see GuestError).
var (
	// ErrDynamicBinary reports a test binary that needs a dynamic loader;
	// the guest has no libc, so build it with CGO_ENABLED=0.
	ErrDynamicBinary = errors.New("test binary is dynamically linked (build it with CGO_ENABLED=0)")
	// ErrModuleNotFound reports a wanted kernel module, or one of its
	// dependencies, that the kernel package does not ship.
	ErrModuleNotFound = errors.New("kernel module not found")
	// ErrModuleCycle reports a dependency cycle between kernel modules.
	ErrModuleCycle = errors.New("kernel module dependency cycle")
	// ErrNoKernelPackage reports that apt names no versioned kernel package
	// for the linux-image-amd64 metapackage.
	ErrNoKernelPackage = errors.New("no versioned kernel package found")
	// ErrTimeout reports a guest that did not finish within its deadline.
	ErrTimeout = errors.New("guest timed out")
	// ErrGuestStalled reports a guest kernel that stopped making progress:
	// a soft lockup or an RCU stall, which the guest turns into a panic at
	// once rather than hanging until the deadline. Seen once in CI, with
	// two vCPUs both stuck in runc.
	ErrGuestStalled = errors.New("guest kernel stalled (soft lockup or RCU stall)")
	// ErrNoExitStatus reports a guest that stopped without writing the test's
	// exit status: a kernel panic, a crash of /init, or a failed boot.
	ErrNoExitStatus = errors.New("guest stopped without reporting an exit status")
	// ErrLibraryNotFound reports a shared library a host program needs that
	// is in none of the directories searched.
	ErrLibraryNotFound = errors.New("shared library not found")
	// ErrNotGuestBinary reports a host program that is not an x86-64 ELF
	// executable, the only kind the guest runs.
	ErrNotGuestBinary = errors.New("not an x86-64 ELF executable")
	// ErrToolNotFound reports a program the guest image carries that is
	// not installed on the host; the error names its Debian package.
	ErrToolNotFound = errors.New("host program not found")
)
