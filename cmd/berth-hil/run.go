package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/berth-io/berth/core/hil"
)

const (
	// defaultTimeout bounds a boot when the test binary has no -test.timeout.
	defaultTimeout = 3 * time.Minute
	// bootAllowance is added to -test.timeout for booting and powering off.
	bootAllowance = 30 * time.Second
)

// run executes `berth-hil TESTBINARY [ARGS...]` or `berth-hil -prepare` and
// returns the process exit status.
func run(args []string) (int, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		return 2, errors.New("usage: berth-hil TESTBINARY [ARGS...] | berth-hil -prepare (a go test -exec wrapper)")
	}
	level := slog.LevelInfo
	if os.Getenv("BERTH_HIL_VERBOSE") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT)
	defer stop()

	prepare := len(args) == 1 && (args[0] == "-prepare" || args[0] == "--prepare")
	cacheRoot, err := cacheRoot()
	if err != nil {
		return 1, err
	}
	start := time.Now()
	var payload hil.Payload
	if !prepare {
		// Refuse a bad test binary or manifest before fetching anything.
		if payload, err = newPayload(ctx, args, cacheRoot); err != nil {
			return 1, err
		}
		log.Debug("payload ready", "files", len(payload.Files), "elapsed", time.Since(start))
	}
	kernel, err := hil.FetchKernel(ctx, cacheRoot, hil.DefaultModules(), log)
	if err != nil {
		return 1, err
	}
	busybox := envOr("BERTH_HIL_BUSYBOX", "/bin/busybox")
	tools, err := hil.ToolFiles(hil.DefaultTools())
	if err != nil {
		return 1, err
	}
	base, err := hil.BuildBase(kernel, busybox, tools)
	if err != nil {
		return 1, err
	}
	vm := hil.VM{
		QEMU:      envOr("BERTH_HIL_QEMU", "qemu-system-x86_64"),
		Kernel:    kernel.Vmlinuz(),
		Initramfs: base,
		MemoryMB:  1024,
		CPUs:      1, // as fast as 2 for these tests (make hil: 33.5 s vs 34.9 s), and no cross-CPU stalls
		Log:       log,
	}
	accel := envOr("BERTH_HIL_ACCEL", "auto")
	switch accel {
	case "auto":
		vm.Accel = hil.ChooseAccel(ctx, vm, busybox, cacheRoot)
	case hil.AccelTCG, hil.AccelKVM:
		vm.Accel = accel
	default:
		return 2, fmt.Errorf("BERTH_HIL_ACCEL=%q: want auto, tcg or kvm", accel)
	}
	log.Debug("guest ready", "kernel", kernel.Package, "version", kernel.Version, "accel", vm.Accel, "elapsed", time.Since(start))
	if prepare {
		fmt.Printf("berth-hil: kernel %s %s, initramfs %s (%s), accel %s (%.1fs)\n",
			kernel.Package, kernel.Version, base, fileSize(base), vm.Accel, time.Since(start).Seconds())
		return 0, nil
	}

	res, err := runTest(ctx, &vm, payload, accel == "auto", cacheRoot, log, os.Stdout, os.Stderr)
	if err != nil {
		return 1, fmt.Errorf("guest under %s: %w", vm.Accel, err)
	}
	for line := range strings.Lines(res.Console) {
		if strings.HasPrefix(line, "berth-hil: ") { // the guest init's own lines: timings, failed modules
			log.Debug("guest console", "line", strings.TrimSpace(line))
		}
	}
	if res.ExitCode != 0 {
		// A failing test may be the guest's fault (a module that did not
		// load, a kernel warning): show what the console said.
		fmt.Fprintf(os.Stderr, "berth-hil: test exited with status %d after %.1fs under %s; last lines of the guest console:\n%s\n",
			res.ExitCode, res.Elapsed.Seconds(), vm.Accel, res.Console)
	}
	return res.ExitCode, nil
}

// runTest boots the guest and runs the test, holding its output back
// until the guest reports. A guest kernel that stalls
// (hil.ErrGuestStalled: a soft lockup or RCU stall, the emulator's or
// kernel's fault, not the test's) gets one more boot, and only that run's
// output goes to stdout; the stalled run's goes to stderr. When KVM was
// chosen automatically, the stall marks KVM unreliable on this host (KVM
// in a VM may boot and then hang): the second boot and later runs use
// TCG.
func runTest(ctx context.Context, vm *hil.VM, p hil.Payload, auto bool, cacheRoot string, log *slog.Logger, stdout, stderr io.Writer) (hil.Result, error) {
	timeout := bootTimeout(p.Args)
	var held bytes.Buffer
	res, err := runWithin(ctx, timeout, vm, p, &held)
	if !errors.Is(err, hil.ErrGuestStalled) {
		_, _ = held.WriteTo(stdout)
		return res, err
	}
	stalledUnder := vm.Accel
	if auto && vm.Accel == hil.AccelKVM {
		log.Warn("KVM is unreliable on this host: using TCG from now on (BERTH_HIL_ACCEL=kvm forces KVM)")
		if err := hil.DistrustKVM(cacheRoot); err != nil {
			log.Warn("cannot remember the choice", "err", err)
		}
		vm.Accel = hil.AccelTCG
	}
	fmt.Fprintf(stderr, "berth-hil: the guest kernel stalled under %s; booting once more under %s. The stalled run's output and console:\n%s%v\n",
		stalledUnder, vm.Accel, held.String(), err)
	return runWithin(ctx, timeout, vm, p, stdout)
}

// runWithin runs the guest with a hard deadline of timeout.
func runWithin(ctx context.Context, timeout time.Duration, vm *hil.VM, p hil.Payload, stdout io.Writer) (hil.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return vm.Run(ctx, p, stdout)
}

// newPayload returns the payload for `berth-hil TESTBINARY ARGS...`: go
// test runs the test binary (and so this wrapper) in the package
// directory, so that directory's testdata and what its manifest
// (hil.ManifestName) names go along.
func newPayload(ctx context.Context, args []string, cacheRoot string) (hil.Payload, error) {
	if err := hil.CheckStatic(args[0]); err != nil {
		return hil.Payload{}, err
	}
	p := hil.Payload{Binary: args[0], Args: args[1:]}
	if st, err := os.Stat("testdata"); err == nil && st.IsDir() {
		p.Testdata = "testdata"
	}
	m, err := hil.LoadManifest(".")
	if err != nil || m == nil {
		return p, err
	}
	p.Files, err = m.Resolve(ctx, cacheRoot)
	return p, err
}

// fileSize is the size of the file at path, in MB, for a log line.
func fileSize(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "size unknown"
	}
	return fmt.Sprintf("%.1f MB", float64(st.Size())/1e6)
}

// bootTimeout is the hard limit of one boot: the test binary's
// -test.timeout plus bootAllowance, or defaultTimeout.
func bootTimeout(args []string) time.Duration {
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "test.timeout" {
			continue
		}
		if !hasValue && i+1 < len(args) {
			value = args[i+1]
		}
		if d, err := time.ParseDuration(value); err == nil && d > 0 {
			return d + bootAllowance
		}
	}
	return defaultTimeout
}

func cacheRoot() (string, error) {
	if dir := os.Getenv("BERTH_HIL_CACHE"); dir != "" {
		return dir, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %w (set BERTH_HIL_CACHE)", err)
	}
	return filepath.Join(dir, "berth", "hil"), nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
