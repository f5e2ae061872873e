package vcan

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/sdk"
	hclschemas "github.com/berth-io/berth/hcl-schemas"
	"github.com/berth-io/berth/plugins/internal/canplugin"
)

// Name and Version identify the plugin.
const (
	Name    = "vcan"
	Version = "0.1.0"
)

// DefaultSocket is the hub address when the config names none: an
// abstract unix socket, shared by every process in the network namespace.
const DefaultSocket = "@berth-vcan"

// DefaultBus is the bus served when the config names none.
const DefaultBus = "vcan0"

// Schema is the plugin's config block in the board file:
//
//	config {
//	  socket = "@berth-vcan"          # or a path, e.g. "/run/berth/vcan.sock"
//	  buses  = {
//	    vcan0 = {}                    # classical CAN
//	    vcan1 = { fd = true }         # CAN FD
//	  }
//	}
var Schema = &hclschemas.Body{Attrs: []*hclschemas.Attr{
	{Name: "socket", Type: cty.String, Default: `"` + DefaultSocket + `"`,
		Doc: `The hub's unix socket: "@name" for an abstract socket (shared within one network namespace), or an absolute path (shared by every process that sees the file, across network namespaces). Every plugin using the same socket is on the same buses.`},
	{Name: "buses", Type: cty.Map(cty.ObjectWithOptionalAttrs(map[string]cty.Type{"fd": cty.Bool}, []string{"fd"})),
		Default: `{ ` + DefaultBus + ` = {} }`,
		Doc:     "The buses this plugin serves, by device ID; `fd = true` runs a bus as CAN FD. Every plugin on a bus must agree on fd."},
}}

// Plugin is the vcan device plugin: it implements devices.Plugin and
// can.Driver. Create it with New; Close stops a hub it hosts.
type Plugin struct {
	log    hclog.Logger
	roster devices.Roster
	tally  canplugin.Tally

	mu     sync.Mutex
	addr   string
	buses  map[string]can.Mode
	ids    []string
	hub    *hub // the hub this process hosts, if any
	closed bool
}

var (
	_ devices.Plugin = (*Plugin)(nil)
	_ can.Driver     = (*Plugin)(nil)
)

// New returns an unconfigured plugin logging to log.
func New(log hclog.Logger) *Plugin {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Plugin{log: log}
}

// Info implements devices.Plugin.
func (p *Plugin) Info(context.Context) (devices.Info, error) {
	return devices.Info{Name: Name, Version: Version,
		Classes: []devices.Class{devices.ClassCAN}, ContractVersions: sdk.Versions}, nil
}

// ConfigSchema implements devices.Plugin: it returns [Schema].
func (p *Plugin) ConfigSchema(context.Context) (*hclschemas.Body, error) { return Schema, nil }

// Config is the plugin's decoded config.
type Config struct {
	// Socket is the hub address.
	Socket string
	// Buses maps each device ID to its mode.
	Buses map[string]can.Mode
}

// ParseConfig checks a config value against what the plugin can use;
// errors wrap devices.ErrInvalidConfig.
func ParseConfig(v cty.Value) (Config, error) {
	obj, err := canplugin.Object(v)
	if err != nil {
		return Config{}, err
	}
	c := Config{Buses: make(map[string]can.Mode)}
	if c.Socket, err = canplugin.String(obj, "socket", DefaultSocket); err != nil {
		return Config{}, err
	}
	if err := checkSocket(c.Socket); err != nil {
		return Config{}, err
	}
	entries, err := canplugin.Entries(obj, "buses")
	if err != nil {
		return Config{}, err
	}
	if entries == nil {
		entries = []canplugin.Entry{{Key: DefaultBus, Value: cty.EmptyObjectVal}}
	}
	if len(entries) == 0 {
		return Config{}, fmt.Errorf("%w: buses is empty; name at least one bus", devices.ErrInvalidConfig)
	}
	for _, e := range entries {
		if err := checkBusName(e.Key); err != nil {
			return Config{}, err
		}
		fd, err := canplugin.Bool(e.Value, "fd", false)
		if err != nil {
			return Config{}, fmt.Errorf("bus %s: %w", e.Key, err)
		}
		c.Buses[e.Key] = can.Classical
		if fd {
			c.Buses[e.Key] = can.FD
		}
	}
	return c, nil
}

func checkSocket(s string) error {
	switch {
	case s == "@" || s == "":
		return fmt.Errorf("%w: socket %q: name an abstract socket (\"@name\") or an absolute path", devices.ErrInvalidConfig, s)
	case !strings.HasPrefix(s, "@") && !filepath.IsAbs(s):
		return fmt.Errorf("%w: socket %q is neither an abstract socket (\"@name\") nor an absolute path", devices.ErrInvalidConfig, s)
	case len(s) > 107:
		return fmt.Errorf("%w: socket %q is longer than the 107 bytes a unix socket address holds", devices.ErrInvalidConfig, s)
	}
	return nil
}

func checkBusName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w: bus name %q: want 1 to 64 characters", devices.ErrInvalidConfig, name)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%w: bus name %q: only printable characters, no spaces", devices.ErrInvalidConfig, name)
		}
	}
	return nil
}

// Configure implements devices.Plugin. It joins each bus once, hosting
// the hub if no process does, so a bus whose fd setting disagrees with
// the other plugins on it is refused here, with devices.ErrInvalidConfig.
func (p *Plugin) Configure(ctx context.Context, v cty.Value) error {
	c, err := ParseConfig(v)
	if err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	p.mu.Lock()
	if p.buses != nil {
		p.mu.Unlock()
		return fmt.Errorf("configure: %w: already configured", devices.ErrInvalidConfig)
	}
	p.addr, p.buses = c.Socket, c.Buses
	p.mu.Unlock()
	var devs []devices.Device
	for _, id := range sortedKeys(c.Buses) {
		conn, err := p.connect(ctx, id, c.Buses[id])
		if err != nil {
			p.mu.Lock()
			p.buses = nil
			p.mu.Unlock()
			return fmt.Errorf("configure: %w: %w", devices.ErrInvalidConfig, err)
		}
		conn.Close()
		devs = append(devs, devices.Device{ID: id, Class: devices.ClassCAN, Health: devices.HealthHealthy,
			Attributes: map[string]string{"mode": c.Buses[id].String(), "socket": c.Socket}})
		p.ids = append(p.ids, id)
	}
	p.roster.Set(devs...)
	p.log.Info("configured", "socket", c.Socket, "buses", p.ids)
	return nil
}

// Fingerprint implements devices.Plugin. The device set does not change
// after Configure: every configured bus is healthy.
func (p *Plugin) Fingerprint(ctx context.Context) (devices.FingerprintStream, error) {
	return p.roster.Watch(ctx), nil
}

// Stats implements devices.Plugin: each bus's counters summed over every
// handle this process opened on it.
func (p *Plugin) Stats(context.Context) ([]devices.DeviceStats, error) {
	p.mu.Lock()
	ids := p.ids
	p.mu.Unlock()
	return p.tally.Stats(ids), nil
}

// Open implements can.Driver: each handle is a separate member of the bus.
func (p *Plugin) Open(ctx context.Context, device string) (can.Bus, error) {
	p.mu.Lock()
	buses, closed := p.buses, p.closed
	p.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("open %s: %w", device, devices.ErrClosed)
	case buses == nil:
		return nil, fmt.Errorf("open %s: %w", device, devices.ErrNotConfigured)
	}
	mode, ok := buses[device]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", device, can.ErrUnknownDevice)
	}
	h, err := canplugin.Open(device, mode, &p.tally, func(d canplugin.Deliver) (canplugin.Port, error) {
		return p.join(ctx, device, mode, d)
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", device, err)
	}
	return h, nil
}

// Close stops the hub this process hosts, if any: the members in other
// processes then elect a new host. Handles still open keep reconnecting
// until closed. Safe to call twice.
func (p *Plugin) Close() error {
	p.mu.Lock()
	h := p.hub
	p.hub, p.closed = nil, true
	p.mu.Unlock()
	if h != nil {
		h.close()
	}
	p.roster.Close()
	return nil
}

func (p *Plugin) socket() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// ensureHub hosts the hub at addr in this process unless this process or
// another one already does.
func (p *Plugin) ensureHub(addr string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hub != nil || p.closed {
		return nil
	}
	h, err := tryHost(addr, p.log)
	if err != nil {
		return err
	}
	p.hub = h
	return nil
}

func sortedKeys(m map[string]can.Mode) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
