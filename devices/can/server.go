package can

import (
	"context"
	"fmt"
	"sync"
	"time"

	pb "github.com/berth-io/berth/devices/can/proto"
)

// server serves a [Driver] over gRPC. Each Open makes a handle; the host
// names it in every later call.
type server struct {
	pb.UnimplementedCANServer
	impl Driver

	mu      sync.Mutex
	next    uint64
	handles map[uint64]Bus
}

func newServer(impl Driver) *server {
	return &server{impl: impl, handles: make(map[uint64]Bus)}
}

func (s *server) bus(h uint64) (Bus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.handles[h]
	if !ok {
		return nil, fmt.Errorf("handle %d: %w", h, ErrClosed)
	}
	return b, nil
}

func (s *server) Open(ctx context.Context, req *pb.OpenRequest) (*pb.OpenResponse, error) {
	b, err := s.impl.Open(ctx, req.GetDevice())
	if err != nil {
		return nil, errTable.ToStatus(err)
	}
	s.mu.Lock()
	s.next++
	h := s.next
	s.handles[h] = b
	s.mu.Unlock()
	return &pb.OpenResponse{Handle: h, Fd: b.Mode() == FD}, nil
}

func (s *server) Close(_ context.Context, req *pb.CloseRequest) (*pb.CloseResponse, error) {
	s.mu.Lock()
	b, ok := s.handles[req.GetHandle()]
	delete(s.handles, req.GetHandle())
	s.mu.Unlock()
	if !ok {
		return &pb.CloseResponse{}, nil
	}
	if err := b.Close(); err != nil {
		return nil, errTable.ToStatus(err)
	}
	return &pb.CloseResponse{}, nil
}

func (s *server) Send(ctx context.Context, req *pb.SendRequest) (*pb.SendResponse, error) {
	b, err := s.bus(req.GetHandle())
	if err != nil {
		return nil, errTable.ToStatus(err)
	}
	if err := b.Send(ctx, frameFromProto(req.GetFrame())); err != nil {
		return nil, errTable.ToStatus(err)
	}
	return &pb.SendResponse{}, nil
}

// Receive first sends an empty batch once the stream is subscribed, so the
// host's Receive returns only when no later frame can be missed; every
// later message carries one non-empty batch.
func (s *server) Receive(req *pb.ReceiveRequest, stream pb.CAN_ReceiveServer) error {
	b, err := s.bus(req.GetHandle())
	if err != nil {
		return errTable.ToStatus(err)
	}
	rs, err := b.Receive(stream.Context())
	if err != nil {
		return errTable.ToStatus(err)
	}
	if err := stream.Send(&pb.ReceiveResponse{}); err != nil {
		return err
	}
	for {
		frames, err := rs.Recv()
		if err != nil {
			return errTable.ToStatus(err)
		}
		resp := &pb.ReceiveResponse{Frames: make([]*pb.Frame, len(frames))}
		for i, f := range frames {
			resp.Frames[i] = frameToProto(f)
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (s *server) Status(ctx context.Context, req *pb.StatusRequest) (*pb.StatusResponse, error) {
	b, err := s.bus(req.GetHandle())
	if err != nil {
		return nil, errTable.ToStatus(err)
	}
	st, err := b.State(ctx)
	if err != nil {
		return nil, errTable.ToStatus(err)
	}
	c, err := b.Counters(ctx)
	if err != nil {
		return nil, errTable.ToStatus(err)
	}
	return &pb.StatusResponse{State: stateToProto(st), RxFrames: c.RxFrames,
		TxFrames: c.TxFrames, Errors: c.Errors, Drops: c.Drops}, nil
}

func unixNano(ns int64) time.Time { return time.Unix(0, ns) }
