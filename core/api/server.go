package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/berth-io/berth/core/api/v1"
)

// NamedImporter is an optional Backend feature: importing an archive and
// giving its image the reference the user chose (`berth image import
// --name`). A Backend without it refuses imports that ask for a name.
type NamedImporter interface {
	ImportImageNamed(ctx context.Context, path, ref string) ([]Image, error)
}

// chunkSize is how many bytes one stream message carries for image uploads
// and exec output.
const chunkSize = 256 << 10

// ServerOption configures NewServer.
type ServerOption func(*serverConfig)

type serverConfig struct {
	logger    *slog.Logger
	importDir string
	grpcOpts  []grpc.ServerOption
}

// WithLogger sets the logger the server reports failed calls to.
func WithLogger(l *slog.Logger) ServerOption {
	return func(c *serverConfig) { c.logger = l }
}

// WithImportDir sets the directory where uploaded image archives are
// written before Backend.ImportImage reads them. It should be on the same
// file system as the image store. The default is os.TempDir().
func WithImportDir(dir string) ServerOption {
	return func(c *serverConfig) { c.importDir = dir }
}

// WithGRPCOptions passes options through to grpc.NewServer.
func WithGRPCOptions(opts ...grpc.ServerOption) ServerOption {
	return func(c *serverConfig) { c.grpcOpts = append(c.grpcOpts, opts...) }
}

// NewServer returns a gRPC server with the Berth service registered, each
// RPC served by one call to b. The caller starts it with Serve on a
// listener (see Listen) and stops it with GracefulStop or Stop.
func NewServer(b Backend, opts ...ServerOption) *grpc.Server {
	cfg := serverConfig{logger: slog.New(slog.DiscardHandler), importDir: os.TempDir()}
	for _, o := range opts {
		o(&cfg)
	}
	s := &server{b: b, log: cfg.logger, importDir: cfg.importDir}
	gopts := append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.unaryLog),
		grpc.ChainStreamInterceptor(s.streamLog),
	}, cfg.grpcOpts...)
	gs := grpc.NewServer(gopts...)
	apiv1.RegisterBerthServer(gs, s)
	return gs
}

type server struct {
	apiv1.UnimplementedBerthServer
	b         Backend
	log       *slog.Logger
	importDir string
}

func (s *server) logErr(method string, err error) {
	if err == nil {
		return
	}
	switch status.Code(err) {
	case codes.Internal, codes.Unknown:
		s.log.Error("api call failed", "method", method, "err", err)
	default:
		s.log.Debug("api call refused", "method", method, "err", err)
	}
}

func (s *server) unaryLog(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	s.logErr(info.FullMethod, err)
	return resp, err
}

func (s *server) streamLog(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	err := h(srv, ss)
	s.logErr(info.FullMethod, err)
	return err
}

func (s *server) Plan(ctx context.Context, req *apiv1.ApplyRequest) (*apiv1.PlanResponse, error) {
	p, err := s.b.Plan(ctx, applyFromProto(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.PlanResponse{Plan: planToProto(p)}, nil
}

// sendEvents adapts a stream to a Backend progress callback. The callback
// may be called from any goroutine; a failed send is remembered and ends
// further sends, the Backend carries on (the client is gone, the work is not
// undone).
type eventSender struct {
	mu   sync.Mutex
	err  error
	send func(*apiv1.Event) error
}

func (e *eventSender) progress(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil {
		e.err = e.send(eventToProto(ev))
	}
}

func (s *server) Up(req *apiv1.ApplyRequest, stream apiv1.Berth_UpServer) error {
	es := &eventSender{send: func(ev *apiv1.Event) error {
		return stream.Send(&apiv1.UpResponse{Msg: &apiv1.UpResponse_Event{Event: ev}})
	}}
	p, err := s.b.Up(stream.Context(), applyFromProto(req), es.progress)
	if err != nil {
		return toStatus(err)
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	es.err = errors.New("up finished") // no events after the plan
	return stream.Send(&apiv1.UpResponse{Msg: &apiv1.UpResponse_Plan{Plan: planToProto(p)}})
}

func (s *server) Down(req *apiv1.DownRequest, stream apiv1.Berth_DownServer) error {
	es := &eventSender{send: stream.Send}
	err := s.b.Down(stream.Context(), req.GetStack(), es.progress)
	es.mu.Lock()
	defer es.mu.Unlock()
	es.err = errors.New("down finished")
	return toStatus(err)
}

func (s *server) Containers(ctx context.Context, _ *apiv1.ContainersRequest) (*apiv1.ContainersResponse, error) {
	cs, err := s.b.Containers(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &apiv1.ContainersResponse{}
	for _, c := range cs {
		resp.Containers = append(resp.Containers, containerToProto(c))
	}
	return resp, nil
}

func (s *server) Pause(ctx context.Context, req *apiv1.PauseRequest) (*apiv1.PauseResponse, error) {
	if err := s.b.Pause(ctx, req.GetContainer()); err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.PauseResponse{}, nil
}

func (s *server) Resume(ctx context.Context, req *apiv1.ResumeRequest) (*apiv1.ResumeResponse, error) {
	if err := s.b.Resume(ctx, req.GetContainer()); err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.ResumeResponse{}, nil
}

func (s *server) Logs(req *apiv1.LogsRequest, stream apiv1.Berth_LogsServer) error {
	opts := LogOptions{Follow: req.GetFollow(), Tail: int(req.GetTail())}
	err := s.b.Logs(stream.Context(), req.GetContainer(), opts, func(l LogLine) error {
		return stream.Send(logLineToProto(l))
	})
	return toStatus(err)
}

// streamWriter sends each Write as one ExecResponse; the two of them (stdout
// and stderr) share a mutex because a gRPC stream allows one sender at a time.
type streamWriter struct {
	mu   *sync.Mutex
	send func([]byte) error
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for off := 0; off < len(p); off += chunkSize {
		end := min(off+chunkSize, len(p))
		// The slice is copied: the caller may reuse p once Write returns,
		// and Send may hold on to the message.
		if err := w.send(append([]byte(nil), p[off:end]...)); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

func (s *server) Exec(stream apiv1.Berth_ExecServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "exec: the first message must be an ExecStart")
	}

	// stdin: copy the client's chunks into a pipe until it closes stdin or
	// the call ends. Closing pr after Exec returns unblocks a pending Write.
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				if err == io.EOF {
					pw.Close()
				} else {
					pw.CloseWithError(err)
				}
				return
			}
			switch m := msg.GetMsg().(type) {
			case *apiv1.ExecRequest_Stdin:
				if _, err := pw.Write(m.Stdin); err != nil {
					return
				}
			case *apiv1.ExecRequest_StdinClose:
				pw.Close()
			}
		}
	}()

	var mu sync.Mutex
	stdout := streamWriter{mu: &mu, send: func(b []byte) error {
		return stream.Send(&apiv1.ExecResponse{Msg: &apiv1.ExecResponse_Stdout{Stdout: b}})
	}}
	stderr := streamWriter{mu: &mu, send: func(b []byte) error {
		return stream.Send(&apiv1.ExecResponse{Msg: &apiv1.ExecResponse_Stderr{Stderr: b}})
	}}
	req := ExecRequest{Args: start.GetArgs(), Env: start.GetEnv()}
	code, err := s.b.Exec(stream.Context(), start.GetContainer(), req, pr, stdout, stderr)
	if err != nil {
		return toStatus(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return stream.Send(&apiv1.ExecResponse{Msg: &apiv1.ExecResponse_ExitCode{ExitCode: int32(code)}})
}

func (s *server) Images(ctx context.Context, _ *apiv1.ImagesRequest) (*apiv1.ImagesResponse, error) {
	imgs, err := s.b.Images(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.ImagesResponse{Images: imagesToProto(imgs)}, nil
}

func (s *server) ImportImage(stream apiv1.Berth_ImportImageServer) error {
	ctx := stream.Context()
	f, err := os.CreateTemp(s.importDir, "import-*.tar")
	if err != nil {
		return toStatus(fmt.Errorf("import image: %w", err))
	}
	path := f.Name()
	// The Backend may delete the file itself; whatever is left goes here.
	defer os.Remove(path)

	name, err := receiveArchive(stream, f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("import image: %w", cerr)
	}
	if err != nil {
		return toStatus(err)
	}

	var imgs []Image
	if name == "" {
		imgs, err = s.b.ImportImage(ctx, path)
	} else if ni, ok := s.b.(NamedImporter); ok {
		imgs, err = ni.ImportImageNamed(ctx, path, name)
	} else {
		err = fmt.Errorf("import image as %q: naming an imported image is %w by this berthd", name, ErrUnsupported)
	}
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&apiv1.ImportImageResponse{Images: imagesToProto(imgs)})
}

// receiveArchive copies the upload into f and returns the name the first
// message asked for.
func receiveArchive(stream apiv1.Berth_ImportImageServer, f *os.File) (string, error) {
	var name string
	for first := true; ; first = false {
		msg, err := stream.Recv()
		if err == io.EOF {
			return name, nil
		}
		if err != nil {
			return "", err
		}
		if first {
			name = msg.GetName()
		}
		if _, err := f.Write(msg.GetChunk()); err != nil {
			return "", fmt.Errorf("import image: %w", err)
		}
	}
}

func (s *server) RemoveImage(ctx context.Context, req *apiv1.RemoveImageRequest) (*apiv1.RemoveImageResponse, error) {
	if err := s.b.RemoveImage(ctx, req.GetRef()); err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.RemoveImageResponse{}, nil
}

func (s *server) Version(ctx context.Context, _ *apiv1.VersionRequest) (*apiv1.VersionResponse, error) {
	v, err := s.b.Version(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.VersionResponse{Version: v.Version, Runtime: v.Runtime}, nil
}

func (s *server) Devices(ctx context.Context, _ *apiv1.DevicesRequest) (*apiv1.DevicesResponse, error) {
	ds, err := s.b.Devices(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return devicesToProto(ds), nil
}
