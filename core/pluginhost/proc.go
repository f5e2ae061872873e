package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berth-io/berth/core/board"
	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/sdk"
)

// proc is one board plugin: its spec, its resolved binary and the
// instance currently running, if any.
type proc struct {
	h       *Host
	spec    *board.Plugin
	path    string
	devices []*board.Device
	log     *slog.Logger

	// Guarded by h.mu.
	inst     *instance // nil while down
	restarts int
	reason   string // why it is down
}

// instance is one run of a plugin process.
type instance struct {
	p      *proc
	client *sdk.Client
	// ctx ends when the instance is stopped; its fingerprint stream runs
	// under it.
	ctx    context.Context
	cancel context.CancelFunc
	// gone is closed once the instance is declared dead (by its
	// supervisor, or by a call that found its transport broken).
	gone     chan struct{}
	goneOnce sync.Once

	// Guarded by p.h.mu.
	fpSeen      bool
	fingerprint map[string]devices.Device // by device ID
}

// dead reports whether the instance is gone or its process has exited
// (which the supervisor may not have noticed yet).
func (i *instance) dead() bool {
	select {
	case <-i.gone:
		return true
	default:
		return i.client.Exited()
	}
}

// stop ends the instance and kills its process. Safe to call twice.
func (i *instance) stop() {
	i.cancel()
	i.client.Kill()
}

// start launches the plugin, checks it against the board and configures
// it. Errors are *PluginError naming the board line to fix.
func (p *proc) start(ctx context.Context) (*instance, error) {
	ctx, cancel := context.WithTimeout(ctx, p.h.cfg.startTimeout)
	defer cancel()
	opts := []sdk.LaunchOption{sdk.WithLogger(newHCLog(p.log)), sdk.WithStartTimeout(p.h.cfg.startTimeout)}
	if p.spec.SHA256 != "" {
		opts = append(opts, sdk.WithSHA256(p.spec.SHA256))
	}
	c, err := sdk.Launch(ctx, p.path, opts...)
	if err != nil {
		subject := p.spec.PathRange
		if errors.Is(err, devices.ErrChecksumMismatch) {
			subject = p.spec.SHA256Range
		}
		return nil, &PluginError{Plugin: p.spec.Name, Subject: subject, Err: err}
	}
	inst, err := p.configure(ctx, c)
	if err != nil {
		c.Kill()
		return nil, err
	}
	p.log.Info("plugin started", "path", p.path, "name", c.Info.Name, "version", c.Info.Version, "contract", c.Version)
	return inst, nil
}

func (p *proc) configure(ctx context.Context, c *sdk.Client) (*instance, error) {
	for _, d := range p.devices {
		if !c.Info.Drives(d.Class) {
			return nil, &PluginError{Plugin: p.spec.Name, Subject: d.ClassRange, Err: fmt.Errorf(
				"%w: device %q is %s, but %s (%s %s) drives only %v; give the device a plugin that drives %s",
				ErrClassNotDriven, d.Name, d.Class, p.path, c.Info.Name, c.Info.Version, c.Info.Classes, d.Class)}
		}
	}
	schema, err := c.Base.ConfigSchema(ctx)
	if err != nil {
		return nil, &PluginError{Plugin: p.spec.Name, Subject: p.spec.PathRange, Err: fmt.Errorf("config schema: %w", err)}
	}
	val, diags := board.CheckConfig(p.spec, schema)
	if diags.HasErrors() {
		return nil, &PluginError{Plugin: p.spec.Name, Subject: p.spec.ConfigRange, Diags: diags,
			Err: fmt.Errorf("%w: the config block does not match the plugin's schema", devices.ErrInvalidConfig)}
	}
	if err := c.Base.Configure(ctx, val); err != nil {
		return nil, &PluginError{Plugin: p.spec.Name, Subject: p.spec.ConfigRange, Err: fmt.Errorf("configure: %w", err)}
	}
	ictx, cancel := context.WithCancel(p.h.ctx)
	return &instance{p: p, client: c, ctx: ictx, cancel: cancel, gone: make(chan struct{})}, nil
}

// setUp makes inst the running instance.
func (p *proc) setUp(inst *instance) {
	p.h.mu.Lock()
	p.inst, p.reason = inst, ""
	p.h.changedLocked()
	p.h.mu.Unlock()
}

// declareDead records that inst is dead and why, so Open, Wait and
// Devices see the plugin down at once; its supervisor then stops it and
// restarts the plugin. Only the first call for an instance counts.
func (p *proc) declareDead(inst *instance, reason string) {
	inst.goneOnce.Do(func() {
		p.h.mu.Lock()
		if p.inst == inst {
			p.inst, p.reason = nil, reason
			p.h.changedLocked()
		}
		p.h.mu.Unlock()
		close(inst.gone)
	})
}

// running returns the running instance, or an error wrapping
// devices.ErrUnavailable.
func (p *proc) running(op, name string) (*instance, error) {
	p.h.mu.Lock()
	inst, reason := p.inst, p.reason
	p.h.mu.Unlock()
	if inst == nil {
		return nil, fmt.Errorf("%s %s: %w: plugin %s is down (%s)", op, name, devices.ErrUnavailable, p.spec.Name, reason)
	}
	if inst.client.Exited() {
		return nil, fmt.Errorf("%s %s: %w: plugin %s exited", op, name, devices.ErrUnavailable, p.spec.Name)
	}
	return inst, nil
}

// supervise runs inst until it dies, then restarts the plugin with
// back-off, until the host closes.
func (p *proc) supervise(inst *instance) {
	failures := 0
	for {
		began := time.Now()
		reason := p.run(inst)
		p.declareDead(inst, reason)
		inst.stop()
		if reason == "" { // declared dead elsewhere, with its reason
			p.h.mu.Lock()
			reason = p.reason
			p.h.mu.Unlock()
		}
		if p.h.ctx.Err() != nil {
			return
		}
		if time.Since(began) >= p.h.cfg.backoffMax {
			failures = 0
		}
		p.log.Warn("plugin down; restarting", "reason", reason)
		for inst = nil; inst == nil; {
			failures++
			delay := p.backoff(failures)
			p.h.mu.Lock()
			p.reason = fmt.Sprintf("%s; restart %d in %s", reason, failures, delay)
			p.h.changedLocked()
			p.h.mu.Unlock()
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-p.h.ctx.Done():
				t.Stop()
				return
			}
			var err error
			if inst, err = p.start(p.h.ctx); err != nil {
				reason = err.Error()
				p.log.Error("plugin restart failed", "attempt", failures, "error", err)
			}
		}
		p.h.mu.Lock()
		p.restarts++
		p.h.mu.Unlock()
		p.setUp(inst)
	}
}

// backoff is the wait before the n-th consecutive restart (n ≥ 1).
func (p *proc) backoff(n int) time.Duration {
	d := p.h.cfg.backoffMin
	for i := 1; i < n && d < p.h.cfg.backoffMax; i++ {
		d *= 2
	}
	return min(d, p.h.cfg.backoffMax)
}

// run watches inst until it dies or the host closes, and says why it
// ended.
func (p *proc) run(inst *instance) string {
	fpDone := make(chan error, 1)
	go func() { fpDone <- p.watchFingerprints(inst) }()
	tick := time.NewTicker(exitPoll)
	defer tick.Stop()
	for {
		select {
		case <-p.h.ctx.Done():
			return "plugin host closed"
		case <-inst.gone:
			return "" // declared dead with its reason already
		case err := <-fpDone:
			if p.h.ctx.Err() != nil {
				return "plugin host closed"
			}
			if inst.client.Exited() || waitExited(inst, exitPoll) {
				return "plugin process exited"
			}
			return fmt.Sprintf("fingerprint stream ended: %v", err)
		case <-tick.C:
			if inst.client.Exited() {
				return "plugin process exited"
			}
		}
	}
}

// waitExited waits up to d for inst's process to exit: a broken stream
// usually means the process is exiting, and go-plugin notices a moment
// later.
func waitExited(inst *instance, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if inst.client.Exited() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// watchFingerprints records inst's fingerprints until the stream ends and
// returns why it ended.
func (p *proc) watchFingerprints(inst *instance) error {
	stream, err := inst.client.Base.Fingerprint(inst.ctx)
	if err != nil {
		return err
	}
	for {
		fp, err := stream.Recv()
		if err != nil {
			return err
		}
		byID := make(map[string]devices.Device, len(fp.Devices))
		for _, d := range fp.Devices {
			byID[d.ID] = d
		}
		p.h.mu.Lock()
		if p.inst != inst { // a stale stream of an instance already replaced
			p.h.mu.Unlock()
			return nil
		}
		prev, seen := inst.fingerprint, inst.fpSeen
		inst.fingerprint, inst.fpSeen = byID, true
		p.h.changedLocked()
		p.h.mu.Unlock()
		for _, bd := range p.devices {
			old, had := prev[bd.ID]
			cur, has := byID[bd.ID]
			switch {
			case !has && (had || !seen):
				p.log.Warn("device missing from fingerprint", "device", bd.Name, "id", bd.ID)
			case has && (!had || old.Health != cur.Health || old.HealthReason != cur.HealthReason):
				p.log.Info("device health", "device", bd.Name, "id", bd.ID, "health", cur.Health.String(), "reason", cur.HealthReason)
			}
		}
	}
}
