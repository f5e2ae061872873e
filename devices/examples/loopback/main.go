// Command loopback is an example berth device plugin, written as a tier-1
// integrator would write one out of tree: it uses only berth's public
// devices packages. It drives one virtual CAN bus on which every handle
// receives what the others send (a loopback), which is enough to pass the
// CAN conformance suite. See devices/README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/sdk"
	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

func main() {
	log := sdk.NewLogger("loopback")
	p := &loopback{log: log}
	if err := sdk.Serve(sdk.Plugin{Base: p, CAN: p}, log); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// schema is the plugin's config block in the board file:
//
//	plugin "loopback" {
//	  config {
//	    device = "loop0"
//	    fd     = true
//	  }
//	}
var schema = &hclschemas.Body{Attrs: []*hclschemas.Attr{
	{Name: "device", Type: cty.String, Default: `"loop0"`, Doc: "Device ID of the loopback bus."},
	{Name: "fd", Type: cty.Bool, Default: "false", Doc: "Run the bus as CAN FD."},
}}

// loopback implements devices.Plugin and can.Driver.
type loopback struct {
	log    hclog.Logger
	roster devices.Roster

	mu      sync.Mutex
	device  string
	mode    can.Mode
	handles map[*handle]struct{}
	last    time.Time
}

func (p *loopback) Info(context.Context) (devices.Info, error) {
	return devices.Info{Name: "loopback", Version: "0.1.0",
		Classes: []devices.Class{devices.ClassCAN}, ContractVersions: sdk.Versions}, nil
}

func (p *loopback) ConfigSchema(context.Context) (*hclschemas.Body, error) { return schema, nil }

func (p *loopback) Configure(_ context.Context, cfg cty.Value) error {
	device, mode := "loop0", can.Classical
	if cfg != cty.NilVal && !cfg.IsNull() {
		if v := cfg.GetAttr("device"); !v.IsNull() {
			device = v.AsString()
		}
		if v := cfg.GetAttr("fd"); !v.IsNull() && v.True() {
			mode = can.FD
		}
	}
	if device == "" {
		return fmt.Errorf("configure: %w: device must not be empty", devices.ErrInvalidConfig)
	}
	p.mu.Lock()
	p.device, p.mode, p.handles = device, mode, make(map[*handle]struct{})
	p.mu.Unlock()
	p.roster.Set(devices.Device{ID: device, Class: devices.ClassCAN, Health: devices.HealthHealthy,
		Attributes: map[string]string{"mode": mode.String()}})
	p.log.Info("configured", "device", device, "mode", mode.String())
	return nil
}

func (p *loopback) Fingerprint(ctx context.Context) (devices.FingerprintStream, error) {
	return p.roster.Watch(ctx), nil
}

func (p *loopback) Stats(context.Context) ([]devices.DeviceStats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sum can.Counters
	for h := range p.handles {
		c := h.counters()
		sum.RxFrames, sum.TxFrames, sum.Errors, sum.Drops = sum.RxFrames+c.RxFrames, sum.TxFrames+c.TxFrames, sum.Errors+c.Errors, sum.Drops+c.Drops
	}
	return []devices.DeviceStats{{ID: p.device, Counters: sum.Map(), Time: time.Now()}}, nil
}

func (p *loopback) Open(_ context.Context, device string) (can.Bus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.handles == nil {
		return nil, fmt.Errorf("open %s: %w", device, devices.ErrNotConfigured)
	}
	if device != p.device {
		return nil, fmt.Errorf("open %s: %w", device, can.ErrUnknownDevice)
	}
	h := &handle{p: p, hub: can.NewHub(0)}
	p.handles[h] = struct{}{}
	return h, nil
}

// send stamps f and hands it to every handle but from, in one bus order.
func (p *loopback) send(from *handle, f can.Frame) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !now.After(p.last) {
		now = p.last.Add(time.Nanosecond)
	}
	p.last, f.Timestamp = now, now
	for h := range p.handles {
		if h != from {
			h.hub.Publish(f)
		}
	}
}

// handle is one open of the loopback bus.
type handle struct {
	p   *loopback
	hub *can.Hub

	mu     sync.Mutex
	tx     uint64
	closed bool
}

func (h *handle) Mode() can.Mode { return h.p.mode }

func (h *handle) open(op string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("%s: %w", op, can.ErrClosed)
	}
	return nil
}

func (h *handle) Receive(ctx context.Context) (can.Stream, error) {
	if err := h.open("receive"); err != nil {
		return nil, err
	}
	return h.hub.Receive(ctx)
}

func (h *handle) Send(_ context.Context, f can.Frame) error {
	if err := h.open("send"); err != nil {
		return err
	}
	if err := f.Validate(h.p.mode); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	h.p.send(h, f.Clone())
	h.mu.Lock()
	h.tx++
	h.mu.Unlock()
	return nil
}

func (h *handle) State(context.Context) (can.State, error) {
	if err := h.open("state"); err != nil {
		return can.StateUnknown, err
	}
	return can.StateErrorActive, nil
}

func (h *handle) Counters(context.Context) (can.Counters, error) {
	if err := h.open("counters"); err != nil {
		return can.Counters{}, err
	}
	return h.counters(), nil
}

func (h *handle) counters() can.Counters {
	c := h.hub.Counters()
	h.mu.Lock()
	c.TxFrames = h.tx
	h.mu.Unlock()
	return c
}

func (h *handle) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	h.p.mu.Lock()
	delete(h.p.handles, h)
	h.p.mu.Unlock()
	h.hub.Close()
	return nil
}
