// Package daemon is berthd: it opens the image and layer stores, chooses an
// OCI runtime that works on this host, re-adopts the containers an earlier
// berthd left running, and serves the control API on a unix socket until
// told to stop. It wires the core packages together and implements
// api.Backend on top of them; the behaviour lives in those packages.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/core/image"
	"github.com/berth-io/berth/core/network"
	"github.com/berth-io/berth/core/oci"
	"github.com/berth-io/berth/core/rootfs"
	"github.com/berth-io/berth/core/sd"
	"github.com/berth-io/berth/core/stack"
	"github.com/berth-io/berth/core/update"
	"github.com/berth-io/berth/core/version"
)

// Config is what berthd is started with; zero fields take the defaults
// noted on each.
type Config struct {
	// StateDir keeps what survives a reboot: images, layers, volumes,
	// generations (default /var/lib/berth).
	StateDir string
	// RunDir keeps what a reboot clears: the socket, the runtime's state,
	// network namespaces, tmpfs volumes (default /run/berth).
	RunDir string
	// Socket is the API's unix socket (default RunDir/berthd.sock).
	Socket string
	// SocketGID, when >= 0, is the group that may also use the socket
	// (mode 0660); otherwise it is root-only (0600).
	SocketGID int
	// Runtime is the preferred OCI runtime, "crun" (default) or "runc" or a
	// path; berthd falls back to the other when it cannot run a container.
	Runtime string
	// MonitorPath is the berth-monitor binary (default: next to berthd's
	// executable, else found in PATH).
	MonitorPath string
	// CgroupParent is the cgroup under which containers run (default "berth").
	CgroupParent string
	// Board is the board file (board-support/<board>/board.hcl) naming the
	// devices and the plugins that drive them; empty runs no devices, and
	// playbooks with device grants are refused.
	Board string
	// PluginDirs are the folders a board's bare plugin path is looked up in
	// before $PATH (default: berthd's own folder).
	PluginDirs []string
	Log        *slog.Logger
}

func (c *Config) defaults() error {
	if c.StateDir == "" {
		c.StateDir = "/var/lib/berth"
	}
	if c.RunDir == "" {
		c.RunDir = "/run/berth"
	}
	if c.Socket == "" {
		c.Socket = filepath.Join(c.RunDir, "berthd.sock")
	}
	if c.Runtime == "" {
		c.Runtime = "crun"
	}
	if c.CgroupParent == "" {
		c.CgroupParent = "berth"
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.MonitorPath == "" {
		p, err := findMonitor()
		if err != nil {
			return err
		}
		c.MonitorPath = p
	}
	if len(c.PluginDirs) == 0 {
		if exe, err := os.Executable(); err == nil {
			c.PluginDirs = []string{filepath.Dir(exe)}
		}
	}
	paths := []*string{&c.StateDir, &c.RunDir, &c.Socket, &c.MonitorPath}
	if c.Board != "" {
		paths = append(paths, &c.Board)
	}
	for i := range c.PluginDirs {
		paths = append(paths, &c.PluginDirs[i])
	}
	for _, p := range paths {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	return nil
}

// findMonitor looks for berth-monitor beside the running executable, then
// in PATH.
func findMonitor() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "berth-monitor")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("berth-monitor"); err == nil {
		return p, nil
	}
	return "", errors.New("berth-monitor not found beside berthd nor in PATH: install it with berthd (make build puts both in bin/) or pass --monitor")
}

// Daemon is one running berthd.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	images  *image.Store
	layers  *rootfs.Store
	net     *network.Manager
	devices *deviceManager
	runtime *oci.Runtime
	stacks  *stack.Manager
	life    context.CancelFunc
	lock    *os.File // flock on the state dir, held while open
	trim    *trimmer
}

// Open prepares berthd: stores, runtime, networks, and the stacks of the
// last run, re-adopted. It fails when another berthd holds the state dir.
// Close releases it; the containers keep running.
func Open(ctx context.Context, cfg Config) (*Daemon, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	for _, dir := range []string{cfg.StateDir, cfg.RunDir, filepath.Join(cfg.StateDir, "tmp")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	lock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	d, err := open(ctx, cfg)
	if err != nil {
		lock.Close()
		return nil, err
	}
	d.lock = lock
	return d, nil
}

// lockStateDir takes the state dir for this berthd: two daemons on one
// state would both own the same containers. The lock ends with the
// process, so a berthd killed with -9 leaves none behind.
func lockStateDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "berthd.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("state dir %s is in use by another berthd (pid %s): stop it, or give this one its own --state-dir", dir, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("lock state dir %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

func open(ctx context.Context, cfg Config) (*Daemon, error) {
	log := cfg.Log
	images, err := image.Open(filepath.Join(cfg.StateDir, "images"))
	if err != nil {
		return nil, err
	}
	layers, err := rootfs.Open(filepath.Join(cfg.StateDir, "rootfs"), images)
	if err != nil {
		return nil, err
	}
	runtimeRoot := filepath.Join(cfg.RunDir, "runtime")
	rt, err := oci.Select(ctx, cfg.Runtime, filepath.Join(cfg.RunDir, "probe"), log,
		oci.ProbeBinary(cfg.MonitorPath, oci.ProbeExitArg), oci.RuntimeOptions(oci.WithRoot(runtimeRoot), oci.WithLogger(log)))
	if err != nil {
		return nil, err
	}
	nets, err := network.NewManager(filepath.Join(cfg.StateDir, "networks"), log)
	if err != nil {
		return nil, err
	}
	gens, err := update.Open(filepath.Join(cfg.StateDir, "generations"))
	if err != nil {
		nets.Close()
		return nil, err
	}
	life, cancel := context.WithCancel(context.Background())
	devs, err := openDevices(ctx, life, cfg)
	if err != nil {
		cancel()
		nets.Close()
		return nil, err
	}
	devs.native = newNativeCAN(log, nets.Instance())
	drv := &ociDriver{
		runtime: rt, rootfs: layers, net: nets, devices: devs, monitorPath: cfg.MonitorPath,
		stateDir: cfg.StateDir, runDir: cfg.RunDir, cgroupParent: cfg.CgroupParent, log: log,
	}
	d := &Daemon{
		cfg: cfg, log: log, images: images, layers: layers, net: nets, devices: devs, runtime: rt, life: cancel, trim: newTrimmer(log),
		stacks: stack.NewManager(life, drv, images, gens, log, stack.WithPlaybookCheck(devs.check)),
	}
	if err := d.stacks.Restore(ctx); err != nil {
		log.Error("restoring stacks", "err", err)
	}
	if err := d.cleanNetworks(ctx); err != nil {
		log.Warn("cleaning up networks left by an earlier berthd", "err", err)
	}
	if err := devs.native.cleanup(ctx); err != nil {
		log.Warn("cleaning up native CAN links left by an earlier berthd", "err", err)
	}
	return d, nil
}

// cleanNetworks removes what an earlier berthd left on the host's network
// and no restored stack uses: networks of stacks that are down, and links
// of containers that are gone. berthd owns the berth-named links of its
// network namespace: run one berthd per namespace.
func (d *Daemon) cleanNetworks(ctx context.Context) error {
	var keep []network.ContainerRef
	up := map[string]bool{}
	for _, c := range d.stacks.Containers(ctx) {
		keep = append(keep, network.ContainerRef{Stack: c.Stack, Name: c.Name})
		up[c.Stack] = true
	}
	var errs []error
	for _, n := range d.net.Networks() {
		if !up[n.Stack] {
			errs = append(errs, d.net.RemoveNetwork(ctx, n.Stack, n.Name))
		}
	}
	errs = append(errs, d.net.Cleanup(ctx, keep))
	return errors.Join(errs...)
}

// Close ends supervision without stopping any container.
func (d *Daemon) Close() {
	d.trim.stop()
	d.life()
	d.stacks.Shutdown()
	d.devices.close()
	d.net.Close()
	d.lock.Close()
}

// Serve answers the API on the configured socket until ctx ends.
func (d *Daemon) Serve(ctx context.Context) error {
	mode, gid := os.FileMode(0o600), -1
	if d.cfg.SocketGID >= 0 && d.cfg.SocketGID != 0 {
		mode, gid = 0o660, d.cfg.SocketGID
	}
	lis, err := api.Listen(d.cfg.Socket, mode, gid)
	if err != nil {
		return err
	}
	canLis, err := api.ListenPacket(api.CANSocket(d.cfg.Socket), mode, gid)
	if err != nil {
		lis.Close()
		return err
	}
	srv := api.NewServer(d, api.WithLogger(d.log), api.WithImportDir(filepath.Join(d.cfg.StateDir, "tmp")))
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(lis) }()
	canCtx, stopCAN := context.WithCancel(ctx)
	defer stopCAN()
	go func() {
		if err := d.devices.serveOperator(canCtx, canLis); err != nil {
			errc <- fmt.Errorf("operator CAN socket: %w", err)
		}
	}()
	version, _ := d.runtime.Version(ctx)
	d.log.Info("berthd ready", "socket", d.cfg.Socket, "runtime", d.runtime.Name, "runtime_version", version, "state", d.cfg.StateDir)
	sd.Ready("serving on " + d.cfg.Socket)
	go sd.Watchdog(ctx, d.log)
	d.trim.soon() // what only the start needed
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sd.Stopping()
	d.log.Info("berthd stopping; containers keep running")
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		srv.Stop() // streams such as `logs -f` do not end by themselves
	}
	return nil
}

// Run is berthd's main loop: Open, Serve until ctx ends, Close.
func Run(ctx context.Context, cfg Config) error {
	d, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Serve(ctx)
}

// api.Backend

var _ api.Backend = (*Daemon)(nil)

// Plan and Up refuse a playbook whose grants this berthd's board cannot
// serve: the stack manager runs the devices' check (Open).
func (d *Daemon) Plan(ctx context.Context, req api.ApplyRequest) (*api.Plan, error) {
	return d.stacks.Plan(ctx, req)
}

func (d *Daemon) Up(ctx context.Context, req api.ApplyRequest, progress func(api.Event)) (*api.Plan, error) {
	defer d.trim.soon()
	return d.stacks.Up(ctx, req, progress)
}

func (d *Daemon) Devices(ctx context.Context) (api.Devices, error) {
	return d.devices.devices(ctx), nil
}

func (d *Daemon) Down(ctx context.Context, name string, progress func(api.Event)) error {
	defer d.trim.soon()
	return d.stacks.Down(ctx, name, progress)
}

func (d *Daemon) Containers(ctx context.Context) ([]api.ContainerStatus, error) {
	cs := d.stacks.Containers(ctx)
	for i := range cs {
		for _, n := range d.net.Networks() {
			if n.Stack != cs[i].Stack {
				continue
			}
			if a, ok := d.net.Addresses(n.Stack, n.Name)[cs[i].Name]; ok {
				if cs[i].Networks == nil {
					cs[i].Networks = map[string]string{}
				}
				cs[i].Networks[n.Name] = a.String()
			}
		}
	}
	return cs, nil
}

func (d *Daemon) Pause(ctx context.Context, name string) error  { return d.stacks.Pause(ctx, name) }
func (d *Daemon) Resume(ctx context.Context, name string) error { return d.stacks.Resume(ctx, name) }

func (d *Daemon) Logs(ctx context.Context, name string, opts api.LogOptions, emit func(api.LogLine) error) error {
	return d.stacks.Logs(ctx, name, opts, emit)
}

func (d *Daemon) Exec(ctx context.Context, name string, req api.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	return d.stacks.Exec(ctx, name, req, stdin, stdout, stderr)
}

func (d *Daemon) Images(ctx context.Context) ([]api.Image, error) {
	list, err := d.images.List(ctx)
	if err != nil {
		return nil, err
	}
	return apiImages(list), nil
}

func (d *Daemon) ImportImage(ctx context.Context, path string) ([]api.Image, error) {
	return d.ImportImageNamed(ctx, path, "")
}

// ImportImageNamed imports an archive, naming its image ref when not empty.
func (d *Daemon) ImportImageNamed(ctx context.Context, path, ref string) ([]api.Image, error) {
	defer d.trim.soon()
	list, err := d.images.Import(ctx, path, ref)
	if err != nil {
		// The path is berthd's copy of the upload: the user knows the file
		// by the name they gave the CLI, which says it.
		msg := strings.ReplaceAll(err.Error(), "import "+path+": ", "")
		return nil, fmt.Errorf("%s: %w", msg, api.ErrInvalid)
	}
	for _, im := range list {
		d.log.Info("image imported", "ref", im.Ref, "digest", im.Digest, "size", im.Size)
	}
	return apiImages(list), nil
}

func (d *Daemon) RemoveImage(ctx context.Context, ref string) error {
	defer d.trim.soon()
	im, err := d.images.Resolve(ctx, ref)
	if errors.Is(err, image.ErrNotFound) {
		return fmt.Errorf("%w: %w", api.ErrNotFound, err)
	}
	if err != nil {
		return err
	}
	if d.stacks.InUse(im.Digest) {
		return fmt.Errorf("image %s is used by a running stack: bring that stack down or apply a playbook without it first: %w", ref, api.ErrConflict)
	}
	if err := d.images.Remove(ctx, ref); err != nil {
		return err
	}
	return d.collect(ctx)
}

// collect deletes blobs no image names and layers no image or container uses.
func (d *Daemon) collect(ctx context.Context) error {
	stats, err := d.images.GC(ctx)
	if err != nil {
		return err
	}
	list, err := d.images.List(ctx)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, im := range list {
		for _, l := range im.Layers {
			keep[l.DiffID] = true
		}
	}
	removed, err := d.layers.GC(ctx, func(diffID string) bool { return keep[diffID] })
	d.log.Info("garbage collected", "blobs", stats, "layers", removed)
	return err
}

func (d *Daemon) Version(ctx context.Context) (api.VersionInfo, error) {
	v, err := d.runtime.Version(ctx)
	if err != nil {
		v = d.runtime.Name + " (version unknown)"
	}
	return api.VersionInfo{Version: version.Version, Runtime: v}, nil
}

func apiImages(list []image.Image) []api.Image {
	out := make([]api.Image, len(list))
	for i, im := range list {
		out[i] = api.Image{Ref: im.Ref, Digest: im.Digest, Size: im.Size, Created: im.Created}
	}
	return out
}
