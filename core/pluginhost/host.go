// Package pluginhost owns the device plugin processes a board needs: it
// starts each plugin a board device names (sdk.Launch: SHA-256 pin,
// contract version negotiation), checks that the plugin drives the classes
// of the board's devices, checks the board's config block for it against
// the schema the plugin declares and configures it, watches its
// fingerprint stream for device health, polls its stats, and restarts it
// with bounded exponential back-off when it crashes. Plugin log lines
// reach the host's slog logger under the plugin's board name.
//
// The broker reaches devices through [Host.Open], which resolves a board
// device name to its plugin and device ID; while a plugin is down, Open
// and every call on a bus opened from it fail with errors wrapping
// [devices.ErrUnavailable] and [Host.Wait] says when to try again. A bus does not
// survive a plugin restart: the caller closes it and opens a new one.
package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-io/berth/core/board"
	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
)

// Defaults for the options.
const (
	defaultBackoffMin   = 250 * time.Millisecond
	defaultBackoffMax   = 30 * time.Second
	defaultStartTimeout = 30 * time.Second
	// exitPoll is how often a running plugin's process is checked for
	// having exited, beside its fingerprint stream breaking (which is
	// how a crash is usually noticed first).
	exitPoll = 250 * time.Millisecond
)

type config struct {
	log          *slog.Logger
	pluginDirs   []string
	backoffMin   time.Duration
	backoffMax   time.Duration
	startTimeout time.Duration
}

// Option configures [Start].
type Option func(*config)

// WithLogger sets the logger for the host and for the plugins' own log
// lines (attribute "plugin" = the board's plugin name). Default: discard.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithPluginDirs sets the folders a bare plugin path (no '/') is looked
// up in, in order, before $PATH (berthd's --plugin-dir).
func WithPluginDirs(dirs ...string) Option {
	return func(c *config) { c.pluginDirs = append([]string(nil), dirs...) }
}

// WithBackoff sets the restart back-off: the first restart after a crash
// waits min, each further consecutive failure doubles the wait, up to max.
// A plugin that ran for at least max before crashing starts again from
// min. Defaults: 250ms and 30s.
func WithBackoff(min, max time.Duration) Option {
	return func(c *config) {
		if min > 0 {
			c.backoffMin = min
		}
		if max >= c.backoffMin {
			c.backoffMax = max
		}
	}
}

// WithStartTimeout bounds each plugin start, from exec to Configure, on
// restarts and when Start's ctx has no deadline (default 30s).
func WithStartTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.startTimeout = d
		}
	}
}

// Host runs the plugins of one board. Its methods are safe for concurrent
// use.
type Host struct {
	board *board.Board
	cfg   config
	log   *slog.Logger
	// ctx lives until Close; the supervisors and every plugin instance
	// derive from it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	procs   []*proc // in board order
	devices map[string]*device

	mu      sync.Mutex
	closed  bool
	changed chan struct{} // closed and replaced on every state change
}

// device is a board device and the plugin process that drives it.
type device struct {
	spec *board.Device
	proc *proc
}

// Start starts every plugin the board's devices name and returns once
// each is running and configured. A plugin that cannot start — binary not
// found, SHA-256 mismatch, no shared contract version, a device class it
// does not drive, a config block that does not match its schema, a
// Configure refusal — is an error: Start then kills the plugins it had
// started and returns one *PluginError per plugin that failed (joined),
// each naming the board file line to fix. Plugins no device names are
// not started. ctx bounds the start only; the plugins run until Close.
func Start(ctx context.Context, b *board.Board, opts ...Option) (*Host, error) {
	cfg := config{
		log:          slog.New(slog.DiscardHandler),
		backoffMin:   defaultBackoffMin,
		backoffMax:   defaultBackoffMax,
		startTimeout: defaultStartTimeout,
	}
	for _, o := range opts {
		o(&cfg)
	}
	hctx, cancel := context.WithCancel(context.Background())
	h := &Host{
		board: b, cfg: cfg, log: cfg.log, ctx: hctx, cancel: cancel,
		devices: map[string]*device{},
		changed: make(chan struct{}),
	}
	var errs []error
	for _, spec := range b.Plugins {
		devs := b.DevicesOf(spec.Name)
		if len(devs) == 0 {
			continue
		}
		p := &proc{h: h, spec: spec, devices: devs, log: cfg.log.With("plugin", spec.Name)}
		path, err := resolvePath(spec, b.Dir, cfg.pluginDirs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.path = path
		h.procs = append(h.procs, p)
		for _, d := range devs {
			h.devices[d.Name] = &device{spec: d, proc: p}
		}
	}
	if len(errs) > 0 {
		cancel()
		return nil, errors.Join(errs...)
	}

	// Start the plugins in parallel: boot time is the sum of nothing.
	insts := make([]*instance, len(h.procs))
	perrs := make([]error, len(h.procs))
	var wg sync.WaitGroup
	for i, p := range h.procs {
		wg.Go(func() { insts[i], perrs[i] = p.start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(perrs...); err != nil {
		for _, inst := range insts {
			if inst != nil {
				inst.stop()
			}
		}
		cancel()
		return nil, err
	}
	for i, p := range h.procs {
		p.setUp(insts[i])
		h.wg.Go(func() { p.supervise(insts[i]) })
	}
	return h, nil
}

// resolvePath finds spec's binary: absolute as is, a path with a '/'
// relative to the board's folder, a bare name in dirs and then $PATH.
func resolvePath(spec *board.Plugin, boardDir string, dirs []string) (string, error) {
	var tried []string
	check := func(path string) bool {
		tried = append(tried, path)
		fi, err := os.Stat(path)
		return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
	}
	switch {
	case filepath.IsAbs(spec.Path):
		if check(spec.Path) {
			return spec.Path, nil
		}
	case strings.ContainsRune(spec.Path, '/'):
		if p := filepath.Join(boardDir, spec.Path); check(p) {
			return p, nil
		}
	default:
		for _, d := range dirs {
			if p := filepath.Join(d, spec.Path); check(p) {
				return p, nil
			}
		}
		tried = append(tried, "$PATH")
		if p, err := exec.LookPath(spec.Path); err == nil {
			return p, nil
		}
	}
	return "", &PluginError{Plugin: spec.Name, Subject: spec.PathRange, Err: fmt.Errorf(
		"%w: no executable %q (looked at %s); install the plugin there, or set path to where it is",
		ErrPluginNotFound, spec.Path, strings.Join(tried, ", "))}
}

// changedLocked wakes every Wait. Callers hold h.mu.
func (h *Host) changedLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// Board returns the board the host runs.
func (h *Host) Board() *board.Board { return h.board }

// Open opens the board device name (e.g. "can0") on its plugin and returns
// the bus; the caller closes it. It fails with an error wrapping
// devices.ErrUnknownDevice for a name the board lacks (or a device whose
// plugin is not running any more), [ErrWrongClass] for a device that is
// not CAN, [devices.ErrUnavailable] while the device's plugin is down, and
// devices.ErrClosed after Close. Calls on the returned bus fail with
// [devices.ErrUnavailable] once its plugin goes down; the bus is dead then and
// must be closed and opened again.
func (h *Host) Open(ctx context.Context, name string) (can.Bus, error) {
	d, err := h.device("open", name)
	if err != nil {
		return nil, err
	}
	if d.spec.Class != devices.ClassCAN {
		return nil, fmt.Errorf("open %s: %w: it is a %s device, not CAN", name, ErrWrongClass, d.spec.Class)
	}
	inst, err := d.proc.running("open", name)
	if err != nil {
		return nil, err
	}
	b, err := inst.client.CAN.Open(ctx, d.spec.ID)
	if err != nil {
		return nil, inst.wrap(ctx, fmt.Sprintf("open %s", name), err)
	}
	return &bus{Bus: b, inst: inst, name: name}, nil
}

// device looks a board device up; op prefixes the error.
func (h *Host) device(op, name string) (*device, error) {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%s %s: plugin host: %w", op, name, devices.ErrClosed)
	}
	d, ok := h.devices[name]
	if !ok {
		names := make([]string, 0, len(h.devices))
		for _, bd := range h.board.Devices {
			names = append(names, bd.Name)
		}
		return nil, fmt.Errorf("%s %s: %w: board %q has no device %q (it has: %s)",
			op, name, devices.ErrUnknownDevice, h.board.Name, name, strings.Join(names, ", "))
	}
	return d, nil
}

// Wait blocks until the board device name's plugin is running and its
// latest fingerprint reports the device healthy, and returns nil; or
// returns ctx's error when ctx ends first, devices.ErrClosed after Close,
// and devices.ErrUnknownDevice for a name the board lacks. The broker
// waits here after devices.ErrUnavailable before opening again.
func (h *Host) Wait(ctx context.Context, name string) error {
	d, err := h.device("wait", name)
	if err != nil {
		return err
	}
	for {
		h.mu.Lock()
		closed, changed := h.closed, h.changed
		st := d.statusLocked()
		h.mu.Unlock()
		switch {
		case closed:
			return fmt.Errorf("wait %s: plugin host: %w", name, devices.ErrClosed)
		case st.Available && st.Health == devices.HealthHealthy:
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait %s: %w (%s)", name, ctx.Err(), st.Reason)
		}
	}
}

// DeviceStatus is one board device as `berth devices` shows it.
type DeviceStatus struct {
	// Name, Class and Plugin are as the board file says; ID is the
	// plugin's device ID.
	Name   string
	Class  devices.Class
	Plugin string
	ID     string
	// Available is whether the device's plugin is running.
	Available bool
	// Health is the device's health: the plugin's own verdict while it
	// runs, unknown until its first fingerprint, unhealthy while it is
	// down or when its fingerprint lacks the device. Reason says why
	// when it is not healthy.
	Health devices.Health
	Reason string
	// Restarts counts how often the plugin was restarted after a crash.
	Restarts int
	// Attributes are the plugin's description of the device.
	Attributes map[string]string
}

// Devices returns the status of every board device whose plugin the host
// runs, in board file order.
func (h *Host) Devices() []DeviceStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []DeviceStatus
	for _, bd := range h.board.Devices {
		if d, ok := h.devices[bd.Name]; ok {
			out = append(out, d.statusLocked())
		}
	}
	return out
}

// statusLocked computes d's status. Callers hold h.mu.
func (d *device) statusLocked() DeviceStatus {
	p := d.proc
	st := DeviceStatus{Name: d.spec.Name, Class: d.spec.Class, Plugin: p.spec.Name, ID: d.spec.ID, Restarts: p.restarts}
	inst := p.inst
	switch {
	case inst == nil:
		st.Health, st.Reason = devices.HealthUnhealthy, fmt.Sprintf("plugin %s is down: %s", p.spec.Name, p.reason)
	case inst.client.Exited():
		// Exited before the supervisor noticed: down all the same.
		st.Health, st.Reason = devices.HealthUnhealthy, fmt.Sprintf("plugin %s is down: plugin process exited", p.spec.Name)
		inst = nil
	case !inst.fpSeen:
		st.Available = true
		st.Health, st.Reason = devices.HealthUnknown, fmt.Sprintf("waiting for plugin %s's first fingerprint", p.spec.Name)
	default:
		st.Available = true
		dev, ok := inst.fingerprint[d.spec.ID]
		if !ok {
			ids := make([]string, 0, len(inst.fingerprint))
			for id := range inst.fingerprint {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			st.Health, st.Reason = devices.HealthUnhealthy, fmt.Sprintf("plugin %s reports no device %q (it reports: %s)",
				p.spec.Name, d.spec.ID, strings.Join(ids, ", "))
			break
		}
		st.Health, st.Reason, st.Attributes = dev.Health, dev.HealthReason, dev.Attributes
		if dev.Class != d.spec.Class {
			st.Health, st.Reason = devices.HealthUnhealthy, fmt.Sprintf("plugin %s reports device %q as %s, the board says %s",
				p.spec.Name, d.spec.ID, dev.Class, d.spec.Class)
		}
	}
	return st
}

// Counters asks every running plugin for its devices' counters now (for
// CAN: rx_frames, tx_frames, errors, drops) and returns them by board
// device name. Nothing is polled in between: an idle ECU does no work
// for counters nobody reads. A device whose plugin is down, does not
// answer before ctx ends, or reports nothing for it is absent. Counters
// restart from zero with their plugin.
func (h *Host) Counters(ctx context.Context) map[string]map[string]uint64 {
	type answer struct {
		p     *proc
		stats []devices.DeviceStats
	}
	h.mu.Lock()
	var insts []*instance
	for _, p := range h.procs {
		if p.inst != nil && !p.inst.dead() {
			insts = append(insts, p.inst)
		}
	}
	h.mu.Unlock()

	answers := make(chan answer, len(insts))
	for _, inst := range insts {
		go func() {
			stats, err := inst.client.Base.Stats(ctx)
			if err != nil {
				inst.p.log.Debug("stats failed", "error", err)
			}
			answers <- answer{inst.p, stats}
		}()
	}
	out := map[string]map[string]uint64{}
	for range insts {
		a := <-answers
		byID := make(map[string]map[string]uint64, len(a.stats))
		for _, s := range a.stats {
			byID[s.ID] = s.Counters
		}
		for _, d := range a.p.devices {
			if c, ok := byID[d.ID]; ok {
				out[d.Name] = c
			}
		}
	}
	return out
}

// Close stops supervising and kills every plugin, waiting for them to
// exit. Buses opened from the host fail afterwards (their owners still
// close them). Safe to call twice; it always returns nil.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.changedLocked()
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
	return nil
}
