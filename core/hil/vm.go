package hil

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Accelerators qemu can use.
const (
	AccelTCG = "tcg"
	AccelKVM = "kvm"
)

// VM boots one guest per Run. Its fields are read-only once Run is called;
// one VM may serve concurrent Runs.
type VM struct {
	QEMU      string // qemu-system-x86_64 binary (a name looked up in PATH or a path)
	Kernel    string // kernel image (vmlinuz)
	Initramfs string // base initramfs (BuildBase); the payload is appended per run
	Accel     string // AccelTCG or AccelKVM
	MemoryMB  int
	CPUs      int
	Log       *slog.Logger
}

// GuestError is a guest that failed to report a test result: Reason is
// ErrTimeout, ErrGuestStalled or ErrNoExitStatus, Console the last lines of its kernel
// console.
type GuestError struct {
	Reason  error
	Console string
}

func (e *GuestError) Error() string {
	return fmt.Sprintf("%v; last lines of the guest console:\n%s", e.Reason, e.Console)
}

func (e *GuestError) Unwrap() error { return e.Reason }

// Result is the outcome of a guest that reported its test's exit status.
type Result struct {
	ExitCode int
	// Console is the last lines of the kernel console (ttyS0), where the
	// guest's /init also reports a module that failed to load.
	Console string
	// Elapsed is the time from starting qemu to its exit.
	Elapsed time.Duration
}

// consoleTailLines is how much of the console a Result or GuestError carries.
const consoleTailLines = 40

// Run boots the guest with payload p, copies the test's output to stdout
// and returns the test's exit status with the tail of the console. The guest is stopped when ctx ends;
// give ctx a deadline, which is the hard limit of the whole boot. A guest
// that stops or times out without reporting a status is a *GuestError.
func (vm *VM) Run(ctx context.Context, p Payload, stdout io.Writer) (Result, error) {
	if err := CheckStatic(p.Binary); err != nil {
		return Result{}, err
	}
	tmp, err := os.MkdirTemp("", "berth-hil-")
	if err != nil {
		return Result{}, fmt.Errorf("vm run: %w", err)
	}
	defer os.RemoveAll(tmp)

	marker, err := newMarker()
	if err != nil {
		return Result{}, fmt.Errorf("vm run: %w", err)
	}
	initrd := filepath.Join(tmp, "initrd.cpio")
	if err := vm.writeInitrd(initrd, p, marker); err != nil {
		return Result{}, fmt.Errorf("vm run: %w", err)
	}
	if st, err := os.Stat(initrd); err == nil {
		vm.logger().Debug("initramfs written", "bytes", st.Size())
	}
	console := filepath.Join(tmp, "console.log")

	cmd := exec.CommandContext(ctx, vm.QEMU, vm.args(initrd, console)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	var qerr bytes.Buffer
	cmd.Stderr = &qerr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, fmt.Errorf("vm run: %w", err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("vm run: start %s: %w", vm.QEMU, err)
	}
	code, found, scanErr := ScanOutput(out, stdout, marker)
	waitErr := cmd.Wait()
	vm.logger().Debug("guest finished", "accel", vm.Accel, "elapsed", time.Since(start), "status", code, "reported", found)

	switch {
	case found:
		return Result{ExitCode: code, Console: tail(console, consoleTailLines), Elapsed: time.Since(start)}, nil
	case ctx.Err() != nil:
		reason := ErrTimeout
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			reason = ctx.Err()
		}
		return Result{}, &GuestError{Reason: reason, Console: tail(console, consoleTailLines)}
	case waitErr != nil:
		return Result{}, fmt.Errorf("vm run: %s: %w: %s", vm.QEMU, waitErr, strings.TrimSpace(qerr.String()))
	case scanErr != nil:
		return Result{}, fmt.Errorf("vm run: read guest output: %w", scanErr)
	}
	reason := ErrNoExitStatus
	if data, err := os.ReadFile(console); err == nil && stalled(string(data)) {
		reason = ErrGuestStalled
	}
	return Result{}, &GuestError{Reason: reason, Console: tail(console, consoleTailLines)}
}

// stallSignatures are the kernel's words for a CPU that stopped making
// progress (kernel/watchdog.c, kernel/rcu/tree_stall.h).
var stallSignatures = []string{"BUG: soft lockup", "detected stalls on CPUs", "rcu_preempt kthread starved", "rcu_sched kthread starved"}

// stalled reports whether a guest console shows a soft lockup or an RCU stall.
func stalled(console string) bool {
	for _, s := range stallSignatures {
		if strings.Contains(console, s) {
			return true
		}
	}
	return false
}

func (vm *VM) logger() *slog.Logger {
	if vm.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return vm.Log
}

// args returns qemu's command line: no default devices, the console on
// ttyS0 (to a file), the test output on ttyS1 (qemu's stdout), and no
// reboot, so a guest panic (panic=-1) ends qemu at once. A soft lockup or
// an RCU stall panics too: a stalled guest would otherwise sit until the
// deadline.
func (vm *VM) args(initrd, console string) []string {
	cpu := "max"
	if vm.Accel == AccelKVM {
		cpu = "host"
	}
	return []string{
		"-accel", vm.Accel, "-cpu", cpu,
		"-m", strconv.Itoa(vm.MemoryMB), "-smp", strconv.Itoa(vm.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", vm.Kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 oops=panic softlockup_panic=1 sysctl.kernel.panic_on_rcu_stall=1 quiet",
		"-chardev", "file,id=console,path=" + console, "-serial", "chardev:console",
		"-chardev", "stdio,id=output,signal=off", "-serial", "chardev:output",
	}
}

// writeInitrd writes the base initramfs followed by the payload archive.
func (vm *VM) writeInitrd(path string, p Payload, marker string) error {
	dst, err := os.Create(path)
	if err != nil {
		return err
	}
	defer dst.Close()
	src, err := os.Open(vm.Initramfs)
	if err != nil {
		return err
	}
	defer src.Close()
	w := bufio.NewWriterSize(dst, 1<<20)
	if _, err := io.Copy(w, src); err != nil {
		return err
	}
	if err := WritePayload(w, p, marker); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return dst.Close()
}

// newMarker returns a line prefix the test's own output will not contain.
func newMarker() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "berth-hil-exit-" + hex.EncodeToString(b) + "=", nil
}

// ScanOutput copies the guest output r to w until EOF, leaving out the
// status line: marker followed by a decimal exit status. It returns that
// status and whether the line was seen. Text before the marker on the same
// line (test output not ending in a newline) is kept.
func ScanOutput(r io.Reader, w io.Writer, marker string) (code int, found bool, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, rerr := br.ReadString('\n')
		if i := strings.Index(line, marker); i >= 0 && !found {
			if n, perr := strconv.Atoi(strings.TrimSpace(line[i+len(marker):])); perr == nil {
				code, found = n, true
				line = line[:i]
			}
		}
		if _, werr := io.WriteString(w, line); werr != nil {
			return code, found, werr
		}
		if rerr == io.EOF {
			return code, found, nil
		}
		if rerr != nil {
			return code, found, rerr
		}
	}
}

// CheckStatic returns ErrDynamicBinary if the ELF file at path asks for a
// program interpreter (a dynamic loader the guest does not have).
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: %w", path, ErrDynamicBinary)
		}
	}
	return nil
}

// tail returns the last n lines of the file at path (or why it cannot).
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no console: %v)", err)
	}
	text := strings.ReplaceAll(string(data), "\r", "")
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
