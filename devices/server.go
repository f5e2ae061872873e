package devices

import (
	"context"

	pb "github.com/berth-io/berth/devices/proto"
)

// server serves a [Plugin] over gRPC.
type server struct {
	pb.UnimplementedBasePluginServer
	impl Plugin
}

func (s *server) Info(ctx context.Context, _ *pb.InfoRequest) (*pb.InfoResponse, error) {
	info, err := s.impl.Info(ctx)
	if err != nil {
		return nil, errTable.ToStatus(err)
	}
	resp := &pb.InfoResponse{Name: info.Name, Version: info.Version}
	for _, c := range info.Classes {
		resp.Classes = append(resp.Classes, string(c))
	}
	for _, v := range info.ContractVersions {
		resp.ContractVersions = append(resp.ContractVersions, int32(v))
	}
	return resp, nil
}

func (s *server) ConfigSchema(ctx context.Context, _ *pb.ConfigSchemaRequest) (*pb.ConfigSchemaResponse, error) {
	schema, err := s.impl.ConfigSchema(ctx)
	if err != nil {
		return nil, errTable.ToStatus(err)
	}
	data, err := MarshalSchema(schema)
	if err != nil {
		return nil, errTable.ToStatus(err)
	}
	return &pb.ConfigSchemaResponse{SchemaJson: data}, nil
}

func (s *server) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	v, err := UnmarshalConfig(req.GetConfigJson())
	if err != nil {
		return nil, errTable.ToStatus(wrapInvalidConfig(err))
	}
	if err := s.impl.Configure(ctx, v); err != nil {
		return nil, errTable.ToStatus(err)
	}
	return &pb.ConfigureResponse{}, nil
}

func (s *server) Fingerprint(_ *pb.FingerprintRequest, stream pb.BasePlugin_FingerprintServer) error {
	ctx := stream.Context()
	fs, err := s.impl.Fingerprint(ctx)
	if err != nil {
		return errTable.ToStatus(err)
	}
	for {
		fp, err := fs.Recv()
		if err != nil {
			return errTable.ToStatus(err)
		}
		resp := &pb.FingerprintResponse{}
		for _, d := range fp.Devices {
			resp.Devices = append(resp.Devices, &pb.Device{
				Id:           d.ID,
				Class:        string(d.Class),
				Health:       healthToProto(d.Health),
				HealthReason: d.HealthReason,
				Attributes:   d.Attributes,
			})
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (s *server) Stats(ctx context.Context, _ *pb.StatsRequest) (*pb.StatsResponse, error) {
	stats, err := s.impl.Stats(ctx)
	if err != nil {
		return nil, errTable.ToStatus(err)
	}
	resp := &pb.StatsResponse{}
	for _, st := range stats {
		var ts int64
		if !st.Time.IsZero() {
			ts = st.Time.UnixNano()
		}
		resp.Devices = append(resp.Devices, &pb.DeviceStats{Id: st.ID, Counters: st.Counters, TimestampUnixNano: ts})
	}
	return resp, nil
}

func healthToProto(h Health) pb.Health {
	switch h {
	case HealthHealthy:
		return pb.Health_HEALTH_HEALTHY
	case HealthUnhealthy:
		return pb.Health_HEALTH_UNHEALTHY
	}
	return pb.Health_HEALTH_UNKNOWN
}

func healthFromProto(h pb.Health) Health {
	switch h {
	case pb.Health_HEALTH_HEALTHY:
		return HealthHealthy
	case pb.Health_HEALTH_UNHEALTHY:
		return HealthUnhealthy
	}
	return HealthUnknown
}

type invalidConfigError struct{ err error }

func (e invalidConfigError) Error() string   { return e.err.Error() }
func (e invalidConfigError) Unwrap() []error { return []error{ErrInvalidConfig, e.err} }

func wrapInvalidConfig(err error) error { return invalidConfigError{err} }
