package can

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
	return &pb.OpenResponse{Handle: h, Fd: b.Mode() == FD, SendStream: true}, nil
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

// SendStream sends the frames of each batch in order, with the bus's
// SendBatch when it has one, and answers each batch with the errors of
// the frames that were not sent. Consecutive frames with the same
// deadline go to the bus together, bounded by it.
func (s *server) SendStream(stream pb.CAN_SendStreamServer) error {
	ctx := stream.Context()
	res := &pb.SendResult{}
	for {
		req, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		res.Errors = s.sendBatch(ctx, req, res.Errors[:0])
		if err := stream.Send(res); err != nil {
			return err
		}
	}
}

// sendBatch sends req's frames and appends the errors of those that were
// not sent to out.
func (s *server) sendBatch(ctx context.Context, req *pb.SendBatch, out []*pb.SendError) []*pb.SendError {
	frames := make([]Frame, len(req.GetFrames()))
	for i, p := range req.GetFrames() {
		frames[i] = frameFromProto(p)
	}
	deadlines := req.GetDeadlinesUnixNano()
	if len(deadlines) != len(frames) {
		deadlines = nil
	}
	b, err := s.bus(req.GetHandle())
	if err != nil {
		raw := statusBytes(err)
		for i := range frames {
			out = append(out, &pb.SendError{Index: uint32(i), Status: raw})
		}
		return out
	}
	for i := 0; i < len(frames); {
		j := i + 1
		var dl int64
		if deadlines != nil {
			dl = deadlines[i]
			for j < len(frames) && deadlines[j] == dl {
				j++
			}
		} else {
			j = len(frames)
		}
		fctx, cancel := ctx, context.CancelFunc(func() {})
		if dl != 0 {
			fctx, cancel = context.WithDeadline(ctx, unixNano(dl))
		}
		for k, err := range FrameErrors(SendBatch(fctx, b, frames[i:j]), j-i) {
			if err != nil {
				out = append(out, &pb.SendError{Index: uint32(i + k), Status: statusBytes(err)})
			}
		}
		cancel()
		i = j
	}
	return out
}

// statusBytes is err as the serialized google.rpc.Status a failed Send
// call would carry.
func statusBytes(err error) []byte {
	st, _ := status.FromError(errTable.ToStatus(err))
	raw, merr := proto.Marshal(st.Proto())
	if merr != nil {
		raw, _ = proto.Marshal(status.New(codes.Unknown, err.Error()).Proto())
	}
	return raw
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
