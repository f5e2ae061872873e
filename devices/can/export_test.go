package can

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/berth-io/berth/devices/can/proto"
)

// Pending returns how many frames of b, a bus from the shim's client,
// wait for their results: queued or on the wire (0 for any other bus).
func Pending(b Bus) int {
	cb, ok := b.(*clientBus)
	if !ok || cb.tx == nil {
		return 0
	}
	s := cb.tx
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.queue {
		n += len(c.frames)
	}
	if s.cur != nil {
		for _, batch := range s.cur.inflight {
			for _, c := range batch {
				n += len(c.frames)
			}
		}
	}
	return n
}

// legacyServer serves d as a plugin built before SendStream did: Open
// does not offer it and the RPC is unimplemented.
type legacyServer struct{ *server }

func (s legacyServer) Open(ctx context.Context, req *pb.OpenRequest) (*pb.OpenResponse, error) {
	resp, err := s.server.Open(ctx, req)
	if resp != nil {
		resp.SendStream = false
	}
	return resp, err
}

func (legacyServer) SendStream(pb.CAN_SendStreamServer) error {
	return status.Error(codes.Unimplemented, "method SendStream not implemented")
}

// RegisterLegacyServer registers d on s as a plugin that predates
// SendStream serves it.
func RegisterLegacyServer(s *grpc.Server, d Driver) {
	pb.RegisterCANServer(s, legacyServer{newServer(d)})
}
