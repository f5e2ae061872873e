package socketcan

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/vishvananda/netlink"
	"github.com/zclconf/go-cty/cty"

	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/sdk"
	hclschemas "github.com/berth-io/berth/hcl-schemas"
	"github.com/berth-io/berth/plugins/internal/canplugin"
)

// Name and Version identify the plugin.
const (
	Name    = "socketcan"
	Version = "0.1.0"
)

// Largest bit rates accepted: 1 Mbit/s nominal, 15 Mbit/s data phase.
const (
	maxBitrate     = 1_000_000
	maxDataBitrate = 15_000_000
)

// Schema is the plugin's config block in the board file:
//
//	config {
//	  devices = {
//	    can0 = {}                                   # interface can0, as it is
//	    body = { interface = "can1", bitrate = 500000 }
//	    adas = { interface = "can2", fd = true, bitrate = 500000, data_bitrate = 2000000 }
//	  }
//	}
var Schema = &hclschemas.Body{Attrs: []*hclschemas.Attr{
	{Name: "devices", Required: true, Type: cty.Map(cty.ObjectWithOptionalAttrs(map[string]cty.Type{
		"interface":    cty.String,
		"fd":           cty.Bool,
		"bitrate":      cty.Number,
		"data_bitrate": cty.Number,
	}, []string{"interface", "fd", "bitrate", "data_bitrate"})),
		Doc: "The CAN buses this plugin drives, by device ID. `interface` is the kernel interface (default: the device ID); `fd = true` runs CAN FD (the interface's MTU must be 72); `bitrate` and `data_bitrate` (bit/s), when set, are programmed through netlink at configure time, which needs a real controller and CAP_NET_ADMIN."},
}}

// Device is one configured bus.
type Device struct {
	ID          string
	Interface   string
	FD          bool
	Bitrate     uint32 // 0: leave as is
	DataBitrate uint32 // 0: leave as is
}

// ParseConfig checks a config value; errors wrap devices.ErrInvalidConfig.
func ParseConfig(v cty.Value) ([]Device, error) {
	obj, err := canplugin.Object(v)
	if err != nil {
		return nil, err
	}
	entries, err := canplugin.Entries(obj, "devices")
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: devices is missing or empty; name at least one CAN interface", devices.ErrInvalidConfig)
	}
	var out []Device
	for _, e := range entries {
		d := Device{ID: e.Key}
		fail := func(err error) ([]Device, error) { return nil, fmt.Errorf("device %s: %w", e.Key, err) }
		if d.Interface, err = canplugin.String(e.Value, "interface", e.Key); err != nil {
			return fail(err)
		}
		if d.Interface == "" || len(d.Interface) >= 16 {
			return fail(fmt.Errorf("%w: interface %q: want 1 to 15 characters", devices.ErrInvalidConfig, d.Interface))
		}
		if d.FD, err = canplugin.Bool(e.Value, "fd", false); err != nil {
			return fail(err)
		}
		br, err := canplugin.Uint(e.Value, "bitrate", maxBitrate)
		if err != nil {
			return fail(err)
		}
		dbr, err := canplugin.Uint(e.Value, "data_bitrate", maxDataBitrate)
		if err != nil {
			return fail(err)
		}
		if dbr > 0 && !d.FD {
			return fail(fmt.Errorf("%w: data_bitrate is the CAN FD data phase rate; set fd = true or drop it", devices.ErrInvalidConfig))
		}
		if dbr > 0 && br == 0 {
			return fail(fmt.Errorf("%w: data_bitrate needs bitrate too", devices.ErrInvalidConfig))
		}
		d.Bitrate, d.DataBitrate = uint32(br), uint32(dbr)
		out = append(out, d)
	}
	return out, nil
}

// Plugin is the SocketCAN device plugin: it implements devices.Plugin and
// can.Driver over kernel CAN interfaces.
type Plugin struct {
	log    hclog.Logger
	roster devices.Roster
	tally  canplugin.Tally

	mu   sync.Mutex
	devs map[string]Device
	ids  []string

	watchOnce sync.Once
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

// Configure implements devices.Plugin: it programs the bit rates the board
// asks for, checks each interface exists and, for FD, has the CAN FD MTU.
// A device whose interface is missing is reported unhealthy, not refused:
// it may be hot-plugged later.
func (p *Plugin) Configure(ctx context.Context, v cty.Value) error {
	devs, err := ParseConfig(v)
	if err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	var fp []devices.Device
	m := make(map[string]Device, len(devs))
	var ids []string
	for _, d := range devs {
		if d.Bitrate > 0 {
			if err := setBitrate(d.Interface, d.Bitrate, d.DataBitrate, d.FD); err != nil {
				return fmt.Errorf("configure device %s: %w", d.ID, err)
			}
		}
		fp = append(fp, p.probe(d))
		m[d.ID] = d
		ids = append(ids, d.ID)
	}
	p.mu.Lock()
	p.devs, p.ids = m, ids
	p.mu.Unlock()
	p.roster.Set(fp...)
	p.watchOnce.Do(func() { go p.watchLinks() })
	p.log.Info("configured", "devices", ids)
	return nil
}

// watchLinks follows the kernel's link notifications for the life of the
// process and fingerprints a device again whenever its interface changes:
// goes down or up, leaves or comes back, changes its MTU.
func (p *Plugin) watchLinks() {
	updates := make(chan netlink.LinkUpdate, 16)
	err := netlink.LinkSubscribeWithOptions(updates, nil, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) { p.log.Warn("link notifications", "error", err) },
	})
	if err != nil {
		p.log.Error("cannot follow link changes; device health follows the sockets only", "error", err)
		return
	}
	for u := range updates {
		name := u.Attrs().Name
		p.mu.Lock()
		var changed []Device
		for _, id := range p.ids {
			if d := p.devs[id]; d.Interface == name {
				changed = append(changed, d)
			}
		}
		p.mu.Unlock()
		for _, d := range changed {
			fresh := p.probe(d)
			p.roster.Update(fresh)
			p.log.Info("interface changed", "device", d.ID, "interface", name, "health", fresh.Health.String(), "reason", fresh.HealthReason)
		}
	}
}

// probe fingerprints d's interface.
func (p *Plugin) probe(d Device) devices.Device {
	out := devices.Device{ID: d.ID, Class: devices.ClassCAN, Health: devices.HealthHealthy,
		Attributes: map[string]string{can.AttrInterface: d.Interface, "mode": modeOf(d).String()}}
	if d.Bitrate > 0 {
		out.Attributes["bitrate"] = fmt.Sprint(d.Bitrate)
	}
	if d.DataBitrate > 0 {
		out.Attributes["data_bitrate"] = fmt.Sprint(d.DataBitrate)
	}
	mtu, err := linkMTU(d.Interface)
	switch {
	case err != nil:
		out.Health, out.HealthReason = devices.HealthUnhealthy, err.Error()
	case d.FD && mtu != fdMTU:
		out.Health, out.HealthReason = devices.HealthUnhealthy, fmt.Sprintf("fd = true but interface %s has MTU %d, not %d (CAN FD off)", d.Interface, mtu, fdMTU)
	default:
		if st, err := linkState(d.Interface); err == nil {
			out.Attributes["state"] = st.String()
			if st == can.StateBusOff || st == can.StateStopped {
				out.Health, out.HealthReason = devices.HealthUnhealthy, st.String()
			}
		}
	}
	return out
}

func modeOf(d Device) can.Mode {
	if d.FD {
		return can.FD
	}
	return can.Classical
}

// Fingerprint implements devices.Plugin. A device turns unhealthy when its
// interface goes down or away, on a bus-off error frame or a failing
// socket, and healthy again when the interface is up (the kernel's link
// notifications say so) or the controller restarts.
func (p *Plugin) Fingerprint(ctx context.Context) (devices.FingerprintStream, error) {
	return p.roster.Watch(ctx), nil
}

// Stats implements devices.Plugin.
func (p *Plugin) Stats(context.Context) ([]devices.DeviceStats, error) {
	p.mu.Lock()
	ids := p.ids
	p.mu.Unlock()
	return p.tally.Stats(ids), nil
}

// Open implements can.Driver: each handle is its own raw CAN socket.
func (p *Plugin) Open(_ context.Context, device string) (can.Bus, error) {
	p.mu.Lock()
	devs := p.devs
	p.mu.Unlock()
	if devs == nil {
		return nil, fmt.Errorf("open %s: %w", device, devices.ErrNotConfigured)
	}
	d, ok := devs[device]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", device, can.ErrUnknownDevice)
	}
	if d.FD {
		if mtu, err := linkMTU(d.Interface); err == nil && mtu != fdMTU {
			return nil, fmt.Errorf("open %s: interface %s has MTU %d: CAN FD is off (ip link set %s mtu 72)", device, d.Interface, mtu, d.Interface)
		}
	}
	h, err := canplugin.Open(device, modeOf(d), &p.tally, func(deliver canplugin.Deliver) (canplugin.Port, error) {
		return p.dialPort(device, d.Interface, d.FD, deliver)
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", device, err)
	}
	return h, nil
}

// errorFrame updates a device's health from an error frame.
func (p *Plugin) errorFrame(dev string, f can.Frame) {
	e := DecodeError(f)
	p.log.Warn("CAN error frame", "device", dev, "errors", e.String())
	if e.State != can.StateUnknown {
		p.setHealth(dev, e.State, e.String())
	}
}

// setHealth reports dev's controller state in the fingerprint.
func (p *Plugin) setHealth(dev string, st can.State, why string) {
	cur, ok := p.roster.Current()
	if !ok {
		return
	}
	for _, d := range cur.Devices {
		if d.ID != dev {
			continue
		}
		if d.Attributes == nil {
			d.Attributes = map[string]string{}
		}
		d.Attributes["state"] = st.String()
		d.Health, d.HealthReason = devices.HealthHealthy, ""
		if st == can.StateBusOff || st == can.StateStopped {
			d.Health, d.HealthReason = devices.HealthUnhealthy, why
		}
		p.roster.Update(d)
	}
}
