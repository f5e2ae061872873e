package oci

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-io/berth/core/fsutil"
)

// ProbeExitArg is the argument on which berth's own static binaries (the
// berth-monitor) exit 0 at once; Select passes it when one of them is the
// probe payload.
const ProbeExitArg = "--probe-exit"

// probeTimeout bounds one probe container run.
const probeTimeout = 30 * time.Second

// SelectOption configures Select.
type SelectOption func(*selectConfig)

type selectConfig struct {
	probePath string
	probeArgs []string
	rtOpts    []Option
}

// ProbeBinary sets the probe payload: a statically linked executable that
// exits 0 when run as `path args...` in an otherwise empty root file
// system. berthd passes its berth-monitor binary with ProbeExitArg, which
// works on an ECU without busybox. Without this option /bin/busybox
// (`busybox true`) is used when it is a static binary.
func ProbeBinary(path string, args ...string) SelectOption {
	return func(c *selectConfig) { c.probePath, c.probeArgs = path, args }
}

// RuntimeOptions are applied to the Runtime that Select returns (for
// example WithRoot).
func RuntimeOptions(opts ...Option) SelectOption {
	return func(c *selectConfig) { c.rtOpts = append(c.rtOpts, opts...) }
}

// Select returns the first runtime that really runs a container on this
// host: preferred ("crun" when empty; a name or a path), then the other of
// crun and runc. Each candidate runs a tiny probe container (see
// ProbeBinary) from a bundle under probeDir, with its own runtime state
// directory there; the probe's bundle and state are removed afterwards.
//
// When a candidate fails, Select logs one Warn line with the runtime's
// reason and tries the next. It returns an error wrapping ErrNoRuntime and
// naming every failure when none works. It changes nothing on the host but
// the probe's own short-lived cgroup, which the runtime removes.
func Select(ctx context.Context, preferred, probeDir string, log *slog.Logger, opts ...SelectOption) (*Runtime, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var cfg selectConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.probePath == "" {
		p, err := defaultProbe()
		if err != nil {
			return nil, fmt.Errorf("select runtime: %w", err)
		}
		cfg.probePath, cfg.probeArgs = p, []string{"true"}
	}
	if preferred == "" {
		preferred = "crun"
	}
	candidates := []string{preferred}
	for _, n := range []string{"crun", "runc"} {
		if filepath.Base(preferred) != n {
			candidates = append(candidates, n)
		}
	}
	var fails []string
	for i, name := range candidates {
		rt, took, err := probe(ctx, name, probeDir, cfg, log)
		if err == nil {
			log.Info("oci runtime selected", "runtime", rt.Name, "path", rt.Path, "probe", took.Round(time.Millisecond))
			return rt, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("select runtime: %w", ctx.Err())
		}
		fails = append(fails, fmt.Sprintf("%s: %v", name, err))
		if i+1 < len(candidates) {
			log.Warn("oci runtime unusable on this host, trying "+candidates[i+1],
				"runtime", name, "reason", err.Error(), "probe", took.Round(time.Millisecond))
		}
	}
	return nil, fmt.Errorf("select runtime: %w: %s", ErrNoRuntime, strings.Join(fails, "; "))
}

// defaultProbe returns /bin/busybox when it is statically linked.
func defaultProbe() (string, error) {
	const bb = "/bin/busybox"
	if err := checkStatic(bb); err != nil {
		return "", fmt.Errorf("no probe payload (pass oci.ProbeBinary): %w", err)
	}
	return bb, nil
}

// checkStatic fails unless path is an ELF executable with no interpreter.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

// probe runs one probe container with runtime name and returns how long
// it took.
func probe(ctx context.Context, name, probeDir string, cfg selectConfig, log *slog.Logger) (*Runtime, time.Duration, error) {
	start := time.Now()
	rt, err := New(name, append([]Option{WithLogger(log)}, cfg.rtOpts...)...)
	if err != nil {
		return nil, 0, err
	}
	if err := checkStatic(cfg.probePath); err != nil {
		return nil, 0, fmt.Errorf("probe payload: %w", err)
	}
	id := "berth-probe-" + rt.Name + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	dir := filepath.Join(probeDir, id)
	if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		return nil, 0, fmt.Errorf("probe bundle: %w", err)
	}
	defer os.RemoveAll(dir)
	payload := filepath.Base(cfg.probePath) // busybox picks its applet by argv[0]
	if err := fsutil.LinkOrCopy(cfg.probePath, filepath.Join(dir, "rootfs", payload), 0o755); err != nil {
		return nil, 0, fmt.Errorf("probe bundle: %w", err)
	}
	spec, err := Spec(SpecOptions{
		Name:         "berth-probe",
		Rootfs:       filepath.Join(dir, "rootfs"),
		ReadOnlyRoot: true,
		Args:         append([]string{"/" + payload}, cfg.probeArgs...),
	})
	if err != nil {
		return nil, 0, err
	}
	if err := WriteBundle(dir, spec); err != nil {
		return nil, 0, err
	}
	// The probe keeps its own state directory so it never shows in List.
	prt := *rt
	prt.Root = filepath.Join(dir, "state")
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	code, err := prt.Run(pctx, id, dir)
	// run removes the container when it exits; make sure of it.
	if derr := prt.Delete(context.WithoutCancel(ctx), id, true); derr != nil && !errors.Is(derr, ErrNotExist) {
		log.Debug("probe cleanup", "runtime", rt.Name, "err", derr)
	}
	took := time.Since(start)
	if err != nil {
		return nil, took, err
	}
	if code != 0 {
		return nil, took, fmt.Errorf("probe container exited with code %d", code)
	}
	return rt, took, nil
}
