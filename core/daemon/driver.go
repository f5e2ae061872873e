package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/monitor"
	"github.com/berth-io/berth/core/network"
	"github.com/berth-io/berth/core/oci"
	"github.com/berth-io/berth/core/playbook"
	"github.com/berth-io/berth/core/rootfs"
	"github.com/berth-io/berth/core/stack"
)

// ociDriver runs containers with an OCI runtime under berth-monitor, on
// root file systems from rootfs and networks from network. It is the
// stack.Driver berthd uses.
type ociDriver struct {
	runtime      *oci.Runtime
	rootfs       *rootfs.Store
	net          *network.Manager
	devices      *deviceManager
	monitorPath  string
	stateDir     string // containers/, volumes/
	runDir       string // netns/, tmpfs volumes
	cgroupParent string
	log          *slog.Logger
}

var _ stack.Driver = (*ociDriver)(nil)

// containerDir holds a container's bundle, monitor files, hosts and hostname.
func (d *ociDriver) containerDir(s *stack.Spec) string {
	return filepath.Join(d.stateDir, "containers", s.Stack.Name, s.Container.Name)
}

func (d *ociDriver) netnsPath(s *stack.Spec) string {
	return filepath.Join(d.runDir, "netns", s.ID())
}

// volumeDir is where a stack volume's data lives on the host.
func (d *ociDriver) volumeDir(st *playbook.Stack, v *playbook.Volume) string {
	if v.Type == playbook.VolumeTmpfs {
		return filepath.Join(d.runDir, "volumes", st.Name, v.Name)
	}
	return filepath.Join(d.stateDir, "volumes", st.Name, v.Name)
}

func (d *ociDriver) PrepareStack(ctx context.Context, st *playbook.Stack) error {
	for _, n := range st.Networks {
		if _, err := d.net.EnsureNetwork(ctx, network.NetworkSpec{Stack: st.Name, Name: n.Name, Subnet: n.Subnet}); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
		var members []string
		for _, c := range st.Containers {
			for _, name := range c.Networks {
				if name == n.Name {
					members = append(members, c.Name)
				}
			}
		}
		if _, err := d.net.Reserve(ctx, st.Name, n.Name, members); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
	}
	for _, v := range st.Volumes {
		dir := d.volumeDir(st, v)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if v.Type == playbook.VolumeTmpfs && !isMountPoint(dir) {
			opts := "mode=0755"
			if v.Size > 0 {
				opts += fmt.Sprintf(",size=%d", v.Size)
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
				return fmt.Errorf("volume %s: mount tmpfs at %s: %w", v.Name, dir, err)
			}
		}
	}
	return nil
}

func (d *ociDriver) RemoveStack(ctx context.Context, st *playbook.Stack) error {
	var errs []error
	for _, n := range st.Networks {
		if err := d.net.RemoveNetwork(ctx, st.Name, n.Name); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", n.Name, err))
		}
	}
	for _, v := range st.Volumes {
		if v.Type != playbook.VolumeTmpfs {
			continue // persistent volumes outlive the stack
		}
		dir := d.volumeDir(st, v)
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("volume %s: %w", v.Name, err))
		}
		os.Remove(dir)
	}
	removeCgroups(filepath.Join(d.cgroupParent, st.Name))
	os.Remove(filepath.Join(d.stateDir, "containers", st.Name)) // empty by now
	return errors.Join(errs...)
}

// removeCgroups removes the cgroup dir rel, and then its parent, in every
// mounted cgroup hierarchy, where they are empty. The runtime removes each
// container's own cgroup; the stack's and berth's parents are berth's.
func removeCgroups(rel string) {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		// mountinfo: ... mount-point ... - fstype source options
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 || (g[0] != "cgroup" && g[0] != "cgroup2") {
			continue
		}
		for dir := rel; dir != "." && dir != "/"; dir = filepath.Dir(dir) {
			if os.Remove(filepath.Join(f[4], dir)) != nil {
				break // not empty (another stack) or not there
			}
		}
	}
}

func (d *ociDriver) Prepare(ctx context.Context, s *stack.Spec) error {
	began := time.Now()
	defer func() { d.log.Debug("container prepared", "container", s.ID(), "took", time.Since(began)) }()
	dir := d.containerDir(s)
	if err := os.MkdirAll(filepath.Join(dir, "monitor"), 0o700); err != nil {
		return fmt.Errorf("create container dir: %w", err)
	}
	if _, err := d.rootfs.Prepare(ctx, s.ID(), s.Images); err != nil {
		return err
	}
	merged, err := d.rootfs.Mount(ctx, s.ID())
	if err != nil {
		return err
	}
	c := s.Container
	opts := oci.SpecOptions{
		Name:         c.Name,
		Rootfs:       merged,
		ReadOnlyRoot: c.ReadOnly,
		CgroupsPath:  filepath.Join("/", d.cgroupParent, s.Stack.Name, c.Name),
		MemoryBytes:  c.Resources.Memory,
		CPUs:         c.Resources.CPU,
		PidsLimit:    c.Resources.PIDs,
		Annotations:  map[string]string{"io.berth.stack": s.Stack.Name, "io.berth.container": c.Name},
	}
	opts.Args, opts.Env, opts.Cwd, opts.User = process(s)
	if len(opts.Args) == 0 {
		return fmt.Errorf("no command: neither the playbook nor the images %s name one; set `command` in the container block", imageRefs(c))
	}
	for _, m := range c.Mounts {
		for _, v := range s.Stack.Volumes {
			if v.Name == m.Volume {
				opts.Mounts = append(opts.Mounts, oci.Mount{Source: d.volumeDir(s.Stack, v), Destination: m.Path, ReadOnly: m.ReadOnly})
			}
		}
	}
	switch c.NetworkMode {
	case playbook.NetworkHost:
		opts.HostNetwork = true
	case playbook.NetworkBridge:
		ns := d.netnsPath(s)
		if err := ensureNetNS(ns); err != nil {
			return err
		}
		if _, err := d.net.Attach(ctx, s.Stack.Name, c.Name, ns, c.Networks); err != nil {
			return err
		}
		opts.NetNSPath = ns
		opts.Hosts = filepath.Join(dir, "hosts")
		if err := d.writeHosts(s); err != nil {
			return err
		}
	}
	d.prepareNative(ctx, s, &opts) // before serve, which leaves native grants out
	if opts.DeviceDir, err = d.devices.serve(s); err != nil {
		return err
	}
	spec, err := oci.Spec(opts)
	if err != nil {
		return fmt.Errorf("runtime spec: %w", err)
	}
	return oci.WriteBundle(filepath.Join(dir, "bundle"), spec)
}

// process is the container's argv, env, working dir and user: the
// playbook's where it says, else the top-most image's that says.
func process(s *stack.Spec) (args, env []string, cwd, user string) {
	var entrypoint, cmd []string
	envs := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := envs[k]; !ok {
			order = append(order, k)
		}
		envs[k] = v
	}
	for _, im := range s.Images {
		cfg := im.Config
		if len(cfg.Entrypoint) > 0 || len(cfg.Cmd) > 0 {
			entrypoint, cmd = cfg.Entrypoint, cfg.Cmd
		}
		for _, kv := range cfg.Env {
			k, v, _ := strings.Cut(kv, "=")
			set(k, v)
		}
		if cfg.WorkingDir != "" {
			cwd = cfg.WorkingDir
		}
		if cfg.User != "" {
			user = cfg.User
		}
	}
	c := s.Container
	if c.Command != nil {
		entrypoint, cmd = c.Command, nil
	}
	if c.Args != nil {
		cmd = c.Args
	}
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		set(k, c.Env[k])
	}
	for _, k := range order {
		env = append(env, k+"="+envs[k])
	}
	if c.WorkingDir != "" {
		cwd = c.WorkingDir
	}
	if c.User != "" {
		user = c.User
	}
	return append(append([]string{}, entrypoint...), cmd...), env, cwd, user
}

// writeHosts writes the container's /etc/hosts in place, so a running
// container that bind-mounts it sees the change.
func (d *ociDriver) writeHosts(s *stack.Spec) error {
	data := network.HostsFile(s.Container.Name, d.net.HostEntries(s.Stack.Name, s.Container.Name))
	f, err := os.OpenFile(filepath.Join(d.containerDir(s), "hosts"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write hosts: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write hosts: %w", err)
	}
	return f.Close()
}

func (d *ociDriver) Connect(ctx context.Context, specs []*stack.Spec) error {
	for _, s := range specs {
		if s.Container.NetworkMode == playbook.NetworkBridge {
			if err := d.writeHosts(s); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *ociDriver) monitorConfig(s *stack.Spec) monitor.Config {
	dir := d.containerDir(s)
	return monitor.Config{
		ID:          s.ID(),
		Bundle:      filepath.Join(dir, "bundle"),
		Dir:         filepath.Join(dir, "monitor"),
		RuntimePath: d.runtime.Path,
		RuntimeRoot: d.runtime.Root,
		MonitorPath: d.monitorPath,
	}
}

func (d *ociDriver) Start(ctx context.Context, s *stack.Spec) (stack.Task, error) {
	// A run that ended may have left runtime state behind; clear it first.
	if d.runtime.HasState(s.ID()) {
		if err := d.runtime.Delete(ctx, s.ID(), true); err != nil && !errors.Is(err, oci.ErrNotExist) {
			return nil, err
		}
	}
	began := time.Now()
	h, err := monitor.Start(ctx, d.monitorConfig(s))
	if errors.Is(err, monitor.ErrStartFailed) {
		d.log.Debug("container start failed", "container", s.ID(), "err", err)
		return nil, errors.New(oci.StartFailure(err))
	}
	if err != nil {
		return nil, err
	}
	d.log.Debug("container started", "container", s.ID(), "pid", h.Pid(), "took", time.Since(began))
	return &task{h: h, d: d, s: s}, nil
}

func (d *ociDriver) Adopt(ctx context.Context, s *stack.Spec) (stack.Task, error) {
	h, err := monitor.Attach(d.monitorConfig(s).Dir)
	if err != nil {
		return nil, fmt.Errorf("adopt %s: %v: %w", s.ID(), err, stack.ErrNotFound)
	}
	d.adoptNative(ctx, s)
	// Serve the device socket again: the running container reconnects
	// through the folder it has mounted.
	if _, err := d.devices.serve(s); err != nil {
		d.log.Warn("device socket of adopted container", "container", s.ID(), "err", err)
	}
	return &task{h: h, d: d, s: s}, nil
}

func (d *ociDriver) Remove(ctx context.Context, s *stack.Spec) error {
	var errs []error
	if err := d.runtime.Delete(ctx, s.ID(), true); err != nil && !errors.Is(err, oci.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := d.rootfs.Remove(ctx, s.ID()); err != nil {
		errs = append(errs, err)
	}
	if err := d.devices.remove(s); err != nil {
		errs = append(errs, err)
	}
	if err := d.devices.native.detach(s.ID()); err != nil {
		errs = append(errs, err)
	}
	if s.Container.NetworkMode == playbook.NetworkBridge {
		if err := d.net.Detach(ctx, s.Stack.Name, s.Container.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Container.NetworkMode != playbook.NetworkHost {
		// bridge's namespace, or the one native grants gave a "none"
		// container; DeleteNetNS is a no-op where there is none.
		if err := network.DeleteNetNS(d.netnsPath(s)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(d.containerDir(s)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *ociDriver) Logs(ctx context.Context, s *stack.Spec, tail int, follow bool, emit func(stack.LogLine) error) error {
	if tail == 0 {
		tail = -1 // the API says 0 for all lines; ReadLogs says -1
	}
	return monitor.ReadLogs(ctx, d.monitorConfig(s).Dir, tail, follow, func(l monitor.LogLine) error {
		return emit(stack.LogLine{Time: l.Time, Stream: l.Stream, Text: l.Text})
	})
}

// task is one run of a container under its monitor. Delete releases its
// monitor handle, so each run holds a pidfd only while it may be waited on.
type task struct {
	h *monitor.Handle
	d *ociDriver
	s *stack.Spec
}

func (t *task) Pid() int { return t.h.Pid() }

// StartedAt is when the monitor recorded the container's pid, which it
// does as the container starts.
func (t *task) StartedAt() time.Time {
	if fi, err := os.Stat(filepath.Join(t.h.Dir(), "container.pid")); err == nil {
		return fi.ModTime()
	}
	return time.Now()
}

func (t *task) Wait(ctx context.Context) (stack.Exit, error) {
	st, err := t.h.Wait(ctx)
	if err != nil {
		return stack.Exit{}, err
	}
	return stack.Exit{Code: st.Code, Signal: st.Signal, At: st.At}, nil
}

func (t *task) Kill(ctx context.Context, sig syscall.Signal) error {
	err := t.d.runtime.Kill(ctx, t.s.ID(), sig, sig == syscall.SIGKILL)
	if errors.Is(err, oci.ErrNotExist) {
		return nil // already gone
	}
	return err
}

func (t *task) Pause(ctx context.Context) error  { return t.d.runtime.Pause(ctx, t.s.ID()) }
func (t *task) Resume(ctx context.Context) error { return t.d.runtime.Resume(ctx, t.s.ID()) }

func (t *task) Exec(ctx context.Context, args, env []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	p, err := t.d.bundleProcess(t.s)
	if err != nil {
		return 0, err
	}
	p.Args = args
	p.Env = append(p.Env, env...)
	p.Terminal = false
	return t.d.runtime.Exec(ctx, t.s.ID(), *p, stdin, stdout, stderr)
}

// Delete removes the exited run's runtime state and closes its monitor
// handle (the supervisor calls it once Wait has returned).
func (t *task) Delete(ctx context.Context) error {
	if err := t.h.Close(); err != nil {
		t.d.log.Warn("close monitor handle", "container", t.s.ID(), "err", err)
	}
	err := t.d.runtime.Delete(ctx, t.s.ID(), true)
	if errors.Is(err, oci.ErrNotExist) {
		return nil
	}
	return err
}

// bundleProcess reads the container's process (env, user, cwd, caps) from
// its bundle, so an exec runs as the container's own process does.
func (d *ociDriver) bundleProcess(s *stack.Spec) (*specs.Process, error) {
	b, err := os.ReadFile(filepath.Join(d.containerDir(s), "bundle", "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	if spec.Process == nil {
		return nil, errors.New("read bundle: no process")
	}
	return spec.Process, nil
}

func imageRefs(c *playbook.Container) string {
	var refs []string
	for _, r := range c.Images {
		refs = append(refs, r.Ref)
	}
	return strings.Join(refs, ", ")
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// isMountPoint reports whether dir is on another device than its parent.
func isMountPoint(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}
