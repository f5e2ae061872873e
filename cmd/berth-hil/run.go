package main

import (
	"context"
	"errors"
	"fmt"
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
		CPUs:      2,
		Log:       log,
	}
	switch accel := envOr("BERTH_HIL_ACCEL", "auto"); accel {
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

	ctx, cancel := context.WithTimeout(ctx, bootTimeout(args[1:]))
	defer cancel()
	res, err := vm.Run(ctx, payload, os.Stdout)
	if err != nil {
		return 1, err
	}
	for line := range strings.Lines(res.Console) {
		if strings.HasPrefix(line, "berth-hil: ") { // the guest init's own lines: timings, failed modules
			log.Debug("guest console", "line", strings.TrimSpace(line))
		}
	}
	if res.ExitCode != 0 {
		// A failing test may be the guest's fault (a module that did not
		// load, a kernel warning): show what the console said.
		fmt.Fprintf(os.Stderr, "berth-hil: test exited with status %d after %.1fs; last lines of the guest console:\n%s\n",
			res.ExitCode, res.Elapsed.Seconds(), res.Console)
	}
	return res.ExitCode, nil
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
