package devices_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/zclconf/go-cty/cty"

	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/sdk"
	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

var testSchema = &hclschemas.Body{
	Attrs: []*hclschemas.Attr{
		{Name: "bitrate", Type: cty.Number, Required: true, Doc: "Bits per second."},
		{Name: "names", Type: cty.List(cty.String), Default: "[]"},
		{Name: "any", Type: cty.DynamicPseudoType},
		{Name: "opts", Type: cty.Object(map[string]cty.Type{"a": cty.Bool})},
	},
	Blocks: []*hclschemas.Block{{
		Type: "bus", Labels: []string{"name"}, Repeated: true, Doc: "One bus.",
		Body: &hclschemas.Body{Attrs: []*hclschemas.Attr{{Name: "fd", Type: cty.Bool}}},
	}},
}

func TestSchemaRoundTrip(t *testing.T) {
	data, err := devices.MarshalSchema(testSchema)
	if err != nil {
		t.Fatal(err)
	}
	got, err := devices.UnmarshalSchema(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Attrs) != len(testSchema.Attrs) || len(got.Blocks) != 1 {
		t.Fatalf("round trip: %d attrs %d blocks", len(got.Attrs), len(got.Blocks))
	}
	for i, a := range testSchema.Attrs {
		g := got.Attrs[i]
		if g.Name != a.Name || !g.Type.Equals(a.Type) || g.Required != a.Required || g.Default != a.Default || g.Doc != a.Doc {
			t.Errorf("attr %d: got %+v, want %+v", i, g, a)
		}
	}
	b := got.Blocks[0]
	if b.Type != "bus" || len(b.Labels) != 1 || !b.Repeated || b.Body.Attr("fd") == nil {
		t.Errorf("block: got %+v", b)
	}
	if s, err := devices.MarshalSchema(nil); err != nil || s != nil {
		t.Errorf("nil schema: %q, %v", s, err)
	}
	for _, bad := range []string{`{`, `{"attrs":[{"name":"x","type":"nonsense"}]}`, `{"attrs":[{"type":"string"}]}`} {
		if _, err := devices.UnmarshalSchema([]byte(bad)); err == nil {
			t.Errorf("unmarshal %s: no error", bad)
		}
	}
}

func TestConfigRoundTrip(t *testing.T) {
	for _, v := range []cty.Value{
		cty.ObjectVal(map[string]cty.Value{"bitrate": cty.NumberIntVal(500000), "names": cty.ListVal([]cty.Value{cty.StringVal("a")})}),
		cty.EmptyObjectVal,
		cty.NullVal(cty.Object(map[string]cty.Type{"x": cty.String})),
	} {
		data, err := devices.MarshalConfig(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := devices.UnmarshalConfig(data)
		if err != nil {
			t.Fatal(err)
		}
		if !got.RawEquals(v) {
			t.Errorf("round trip %#v gave %#v", v, got)
		}
	}
	if data, err := devices.MarshalConfig(cty.NilVal); err != nil || data != nil {
		t.Errorf("NilVal: %q %v", data, err)
	}
	if _, err := devices.MarshalConfig(cty.UnknownVal(cty.String)); err == nil {
		t.Error("unknown value marshalled")
	}
}

func TestRoster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r devices.Roster
	s := r.Watch(ctx)
	r.Set(devices.Device{ID: "can0", Health: devices.HealthHealthy})
	fp, err := s.Recv()
	if err != nil || len(fp.Devices) != 1 || fp.Devices[0].ID != "can0" {
		t.Fatalf("first: %+v %v", fp, err)
	}
	// Two quick changes coalesce into the latest.
	r.Update(devices.Device{ID: "can1", Health: devices.HealthHealthy})
	r.Update(devices.Device{ID: "can0", Health: devices.HealthUnhealthy, HealthReason: "bus-off"})
	fp, err = s.Recv()
	if err != nil || len(fp.Devices) != 2 || fp.Devices[0].Health != devices.HealthUnhealthy || fp.Devices[0].HealthReason != "bus-off" {
		t.Fatalf("after updates: %+v %v", fp, err)
	}
	// A late watcher gets the current set at once.
	if fp, err := r.Watch(ctx).Recv(); err != nil || len(fp.Devices) != 2 {
		t.Fatalf("late watcher: %+v %v", fp, err)
	}
	r.Close()
	if _, err := s.Recv(); !errors.Is(err, devices.ErrClosed) {
		t.Fatalf("after close: %v, want ErrClosed", err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	var r2 devices.Roster
	s2 := r2.Watch(cctx)
	ccancel()
	if _, err := s2.Recv(); !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v, want context.Canceled", err)
	}
}

// basePlugin is a devices.Plugin for the shim test.
type basePlugin struct {
	roster     devices.Roster
	configured cty.Value
}

func (p *basePlugin) Info(context.Context) (devices.Info, error) {
	return devices.Info{Name: "test", Version: "1.0", Classes: []devices.Class{devices.ClassCAN}, ContractVersions: []int{1}}, nil
}
func (p *basePlugin) ConfigSchema(context.Context) (*hclschemas.Body, error) { return testSchema, nil }
func (p *basePlugin) Configure(_ context.Context, v cty.Value) error {
	if v.IsNull() {
		return fmt.Errorf("configure: %w: config required", devices.ErrInvalidConfig)
	}
	p.configured = v
	return nil
}
func (p *basePlugin) Fingerprint(ctx context.Context) (devices.FingerprintStream, error) {
	return p.roster.Watch(ctx), nil
}
func (p *basePlugin) Stats(context.Context) ([]devices.DeviceStats, error) {
	if p.configured == cty.NilVal {
		return nil, fmt.Errorf("stats: %w", devices.ErrNotConfigured)
	}
	return []devices.DeviceStats{{ID: "can0", Counters: map[string]uint64{"rx_frames": 7}, Time: time.Unix(5, 6)}}, nil
}

func TestBaseShim(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	impl := &basePlugin{}
	c, _ := plugin.TestPluginGRPCConn(t, false, sdk.PluginSet(sdk.Plugin{Base: impl}))
	defer c.Close()
	raw, err := c.Dispense(devices.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	p := raw.(devices.Plugin)

	info, err := p.Info(ctx)
	if err != nil || info.Name != "test" || !info.Drives(devices.ClassCAN) || len(info.ContractVersions) != 1 {
		t.Fatalf("info %+v %v", info, err)
	}
	schema, err := p.ConfigSchema(ctx)
	if err != nil || schema.Attr("bitrate") == nil || !schema.Attr("bitrate").Required {
		t.Fatalf("schema %+v %v", schema, err)
	}
	if _, err := p.Stats(ctx); !errors.Is(err, devices.ErrNotConfigured) {
		t.Errorf("stats before configure: %v, want ErrNotConfigured", err)
	}
	if err := p.Configure(ctx, cty.NullVal(cty.EmptyObject)); !errors.Is(err, devices.ErrInvalidConfig) {
		t.Errorf("configure null: %v, want ErrInvalidConfig", err)
	}
	cfg := cty.ObjectVal(map[string]cty.Value{"bitrate": cty.NumberIntVal(250000)})
	if err := p.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if !impl.configured.RawEquals(cfg) {
		t.Errorf("plugin got config %#v, want %#v", impl.configured, cfg)
	}
	stats, err := p.Stats(ctx)
	if err != nil || len(stats) != 1 || stats[0].Counters["rx_frames"] != 7 || stats[0].Time.UnixNano() != time.Unix(5, 6).UnixNano() {
		t.Fatalf("stats %+v %v", stats, err)
	}

	fctx, fcancel := context.WithCancel(ctx)
	fs, err := p.Fingerprint(fctx)
	if err != nil {
		t.Fatal(err)
	}
	impl.roster.Set(devices.Device{ID: "can0", Class: devices.ClassCAN, Health: devices.HealthHealthy, Attributes: map[string]string{"fd": "true"}})
	fp, err := fs.Recv()
	if err != nil || len(fp.Devices) != 1 || fp.Devices[0].Attributes["fd"] != "true" || fp.Devices[0].Class != devices.ClassCAN {
		t.Fatalf("fingerprint %+v %v", fp, err)
	}
	// Hot-unplug: a failure shows up as a new message.
	impl.roster.Update(devices.Device{ID: "can0", Class: devices.ClassCAN, Health: devices.HealthUnhealthy, HealthReason: "interface removed"})
	fp, err = fs.Recv()
	if err != nil || fp.Devices[0].Health != devices.HealthUnhealthy || fp.Devices[0].HealthReason != "interface removed" {
		t.Fatalf("fingerprint after failure %+v %v", fp, err)
	}
	fcancel()
	if _, err := fs.Recv(); !errors.Is(err, context.Canceled) {
		t.Fatalf("fingerprint after cancel: %v, want context.Canceled", err)
	}
}

func TestHealthString(t *testing.T) {
	for h, want := range map[devices.Health]string{devices.HealthUnknown: "unknown", devices.HealthHealthy: "healthy", devices.HealthUnhealthy: "unhealthy", 9: "Health(9)"} {
		if got := h.String(); got != want {
			t.Errorf("%d: %q, want %q", int(h), got, want)
		}
	}
}
