package devices

import (
	"context"
	"fmt"
	"time"

	"github.com/zclconf/go-cty/cty"

	pb "github.com/berth-io/berth/devices/proto"
	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

// client is the host side of the base contract: a [Plugin] that calls a
// plugin process over gRPC.
type client struct {
	c pb.BasePluginClient
}

var _ Plugin = (*client)(nil)

func (c *client) Info(ctx context.Context) (Info, error) {
	resp, err := c.c.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return Info{}, fmt.Errorf("plugin info: %w", errTable.FromStatus(ctx, err))
	}
	info := Info{Name: resp.GetName(), Version: resp.GetVersion()}
	for _, cl := range resp.GetClasses() {
		info.Classes = append(info.Classes, Class(cl))
	}
	for _, v := range resp.GetContractVersions() {
		info.ContractVersions = append(info.ContractVersions, int(v))
	}
	return info, nil
}

func (c *client) ConfigSchema(ctx context.Context) (*hclschemas.Body, error) {
	resp, err := c.c.ConfigSchema(ctx, &pb.ConfigSchemaRequest{})
	if err != nil {
		return nil, fmt.Errorf("plugin config schema: %w", errTable.FromStatus(ctx, err))
	}
	return UnmarshalSchema(resp.GetSchemaJson())
}

func (c *client) Configure(ctx context.Context, config cty.Value) error {
	data, err := MarshalConfig(config)
	if err != nil {
		return fmt.Errorf("configure plugin: %w", err)
	}
	if _, err := c.c.Configure(ctx, &pb.ConfigureRequest{ConfigJson: data}); err != nil {
		return fmt.Errorf("configure plugin: %w", errTable.FromStatus(ctx, err))
	}
	return nil
}

func (c *client) Fingerprint(ctx context.Context) (FingerprintStream, error) {
	stream, err := c.c.Fingerprint(ctx, &pb.FingerprintRequest{})
	if err != nil {
		return nil, fmt.Errorf("plugin fingerprint: %w", errTable.FromStatus(ctx, err))
	}
	return &clientFingerprints{ctx: ctx, s: stream}, nil
}

type clientFingerprints struct {
	ctx context.Context
	s   pb.BasePlugin_FingerprintClient
}

func (f *clientFingerprints) Recv() (Fingerprint, error) {
	resp, err := f.s.Recv()
	if err != nil {
		if f.ctx.Err() != nil {
			return Fingerprint{}, f.ctx.Err()
		}
		return Fingerprint{}, fmt.Errorf("plugin fingerprint: %w", errTable.FromStatus(f.ctx, err))
	}
	fp := Fingerprint{Devices: make([]Device, 0, len(resp.GetDevices()))}
	for _, d := range resp.GetDevices() {
		fp.Devices = append(fp.Devices, Device{
			ID:           d.GetId(),
			Class:        Class(d.GetClass()),
			Health:       healthFromProto(d.GetHealth()),
			HealthReason: d.GetHealthReason(),
			Attributes:   d.GetAttributes(),
		})
	}
	return fp, nil
}

func (c *client) Stats(ctx context.Context) ([]DeviceStats, error) {
	resp, err := c.c.Stats(ctx, &pb.StatsRequest{})
	if err != nil {
		return nil, fmt.Errorf("plugin stats: %w", errTable.FromStatus(ctx, err))
	}
	out := make([]DeviceStats, 0, len(resp.GetDevices()))
	for _, d := range resp.GetDevices() {
		st := DeviceStats{ID: d.GetId(), Counters: d.GetCounters()}
		if ns := d.GetTimestampUnixNano(); ns != 0 {
			st.Time = time.Unix(0, ns)
		}
		out = append(out, st)
	}
	return out, nil
}
