package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/oci"
	"github.com/berth-io/berth/core/stack"
)

// directContainer is one container of the baseline: the bundle berthd
// wrote for it, on an overlay of the same shared layers that the bench
// mounts once, before any timing.
type directContainer struct {
	id     string
	bundle string
}

// prepareDirect builds the baseline's bundles while berthd's stack is up:
// each container's config.json as berthd wrote it, with its root moved to
// an overlay of the same layers (mounted here, outside the timing) and its
// cgroup moved beside berthd's. It relies on berthd's on-disk layout:
// STATE/containers/STACK/NAME/bundle/config.json (core/daemon) and
// STATE/rootfs/{layers/HEX, containers/ID/layers.json} (core/rootfs).
func (b *bench) prepareDirect(ctx context.Context) error {
	for _, name := range containers {
		var spec specs.Spec
		if err := readJSON(filepath.Join(b.state, "containers", stackName, name, "bundle", "config.json"), &spec); err != nil {
			return fmt.Errorf("baseline %s: %w", name, err)
		}
		layers, err := b.containerLayers(stack.ContainerID(stackName, name))
		if err != nil {
			return fmt.Errorf("baseline %s: %w", name, err)
		}
		dir := filepath.Join(b.tmp, "direct", name)
		for _, d := range []string{"upper", "work", "rootfs"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
		}
		lower := make([]string, len(layers))
		for i, l := range layers { // overlay wants the top layer first
			lower[len(layers)-1-i] = l
		}
		data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s",
			strings.Join(lower, ":"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
		if err := unix.Mount("overlay", filepath.Join(dir, "rootfs"), "overlay", 0, data); err != nil {
			return fmt.Errorf("baseline %s: mount overlay: %w", name, err)
		}
		spec.Root.Path = filepath.Join(dir, "rootfs")
		spec.Linux.CgroupsPath = filepath.Join("/", b.cgroup, "direct", name)
		if err := oci.WriteBundle(dir, &spec); err != nil {
			return fmt.Errorf("baseline %s: %w", name, err)
		}
		b.direct = append(b.direct, directContainer{id: "bench-direct-" + name, bundle: dir})
	}
	return nil
}

// containerLayers returns the absolute directories of container id's
// unpacked layers, bottom first.
func (b *bench) containerLayers(id string) ([]string, error) {
	var rec struct{ Layers []string }
	if err := readJSON(filepath.Join(b.state, "rootfs", "containers", id, "layers.json"), &rec); err != nil {
		return nil, err
	}
	if len(rec.Layers) == 0 {
		return nil, fmt.Errorf("rootfs of %s has no layers", id)
	}
	var dirs []string
	for _, diffID := range rec.Layers {
		_, hex, ok := strings.Cut(diffID, ":")
		if !ok {
			return nil, fmt.Errorf("layer %q: not a digest", diffID)
		}
		dirs = append(dirs, filepath.Join(b.state, "rootfs", "layers", hex))
	}
	return dirs, nil
}

// upDirect starts every baseline container at once with `RUNTIME run -d`,
// as berthd starts a stack's independent containers in parallel, and
// returns how long it took until all had started. It then checks, untimed,
// that all are running.
func (b *bench) upDirect(ctx context.Context) (time.Duration, error) {
	errc := make(chan error, len(b.direct))
	start := time.Now()
	for _, c := range b.direct {
		go func() { errc <- b.runDetached(ctx, c) }()
	}
	var errs []error
	for range b.direct {
		errs = append(errs, <-errc)
	}
	took := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	for _, c := range b.direct {
		st, err := b.rt.State(ctx, c.id)
		if err != nil {
			return 0, err
		}
		if st.Status != specs.StateRunning {
			return 0, fmt.Errorf("baseline %s is %s after %s run -d", c.id, st.Status, b.rt.Name)
		}
	}
	return took, nil
}

// runDetached runs one container with `RUNTIME --root R run -d`. Its stdio
// is /dev/null: pipes would be held open by the container.
func (b *bench) runDetached(ctx context.Context, c directContainer) error {
	logFile := filepath.Join(c.bundle, "runtime.log")
	args := append(b.rt.GlobalArgs(logFile), "run", "-d", "--bundle", c.bundle, c.id)
	if err := exec.CommandContext(ctx, b.rt.Path, args...).Run(); err != nil {
		return fmt.Errorf("%s run %s: %w: %s", b.rt.Name, c.id, err, oci.ReadLogErrors(logFile))
	}
	return nil
}

// downDirect force-deletes the baseline's containers; unknown ones are
// fine.
func (b *bench) downDirect(ctx context.Context) error {
	var errs []error
	for _, c := range b.direct {
		if err := b.rt.Delete(ctx, c.id, true); err != nil && !errors.Is(err, oci.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
