package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	apiv1 "github.com/berth-io/berth/core/api/v1"
)

// Client talks to berthd over its unix socket. Its methods mirror Backend,
// so callers never see protobuf; errors come back as *DiagnosticsError,
// context errors, *UnreachableError, or errors wrapping the sentinels of
// errors.go. A Client is safe for concurrent use; Close releases it.
type Client struct {
	socket string
	conn   *grpc.ClientConn
	rpc    apiv1.BerthClient
}

var _ Backend = (*Client)(nil)

// Dial connects to berthd at socketPath. It checks that something accepts
// connections there first, so a missing daemon is reported at once as an
// *UnreachableError (errors.Is(err, ErrUnreachable)) saying what to do.
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	var d net.Dialer
	probe, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, &UnreachableError{Socket: socketPath, Err: err}
	}
	probe.Close()

	conn, err := grpc.NewClient("passthrough:///berthd",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socketPath)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("dial berthd at %s: %w", socketPath, err)
	}
	return &Client{socket: socketPath, conn: conn, rpc: apiv1.NewBerthClient(conn)}, nil
}

// Close closes the connection; calls in flight fail.
func (c *Client) Close() error { return c.conn.Close() }

// Plan asks berthd what Up would change.
func (c *Client) Plan(ctx context.Context, req ApplyRequest) (*Plan, error) {
	resp, err := c.rpc.Plan(ctx, applyToProto(req))
	if err != nil {
		return nil, c.fromStatus(err)
	}
	return planFromProto(resp.GetPlan()), nil
}

// Up applies the playbook, calling progress (when non-nil) from the calling
// goroutine for each event, and returns the applied plan.
func (c *Client) Up(ctx context.Context, req ApplyRequest, progress func(Event)) (*Plan, error) {
	stream, err := c.rpc.Up(ctx, applyToProto(req))
	if err != nil {
		return nil, c.fromStatus(err)
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return nil, errors.New("up: berthd ended the call without a result")
		}
		if err != nil {
			return nil, c.fromStatus(err)
		}
		switch m := msg.GetMsg().(type) {
		case *apiv1.UpResponse_Event:
			if progress != nil {
				progress(eventFromProto(m.Event))
			}
		case *apiv1.UpResponse_Plan:
			return planFromProto(m.Plan), nil
		}
	}
}

// Down takes the stack down, calling progress (when non-nil) for each event.
func (c *Client) Down(ctx context.Context, stack string, progress func(Event)) error {
	stream, err := c.rpc.Down(ctx, &apiv1.DownRequest{Stack: stack})
	if err != nil {
		return c.fromStatus(err)
	}
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return c.fromStatus(err)
		}
		if progress != nil {
			progress(eventFromProto(ev))
		}
	}
}

// Containers lists every container berthd manages.
func (c *Client) Containers(ctx context.Context) ([]ContainerStatus, error) {
	resp, err := c.rpc.Containers(ctx, &apiv1.ContainersRequest{})
	if err != nil {
		return nil, c.fromStatus(err)
	}
	out := make([]ContainerStatus, 0, len(resp.GetContainers()))
	for _, cs := range resp.GetContainers() {
		out = append(out, containerFromProto(cs))
	}
	return out, nil
}

func (c *Client) Pause(ctx context.Context, container string) error {
	_, err := c.rpc.Pause(ctx, &apiv1.PauseRequest{Container: container})
	return c.fromStatus(err)
}

func (c *Client) Resume(ctx context.Context, container string) error {
	_, err := c.rpc.Resume(ctx, &apiv1.ResumeRequest{Container: container})
	return c.fromStatus(err)
}

// Logs calls emit for each line, from the calling goroutine. An error from
// emit ends the call and is returned. As Backend.Logs says, a followed log
// ends with nil when ctx ends.
func (c *Client) Logs(ctx context.Context, container string, opts LogOptions, emit func(LogLine) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Logs(ctx, &apiv1.LogsRequest{Container: container, Follow: opts.Follow, Tail: int32(opts.Tail)})
	if err != nil {
		return c.logsErr(ctx, opts, err)
	}
	for {
		l, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return c.logsErr(ctx, opts, err)
		}
		if err := emit(logLineFromProto(l)); err != nil {
			return err
		}
	}
}

func (c *Client) logsErr(ctx context.Context, opts LogOptions, err error) error {
	if opts.Follow && ctx.Err() != nil {
		return nil
	}
	return c.fromStatus(err)
}

// Exec runs a process in a container and returns its exit code. stdin is
// copied to the process until it returns io.EOF (a nil stdin is empty);
// stdout and stderr receive its output from the calling goroutine. The
// goroutine reading stdin may stay blocked in stdin.Read after Exec returns,
// until that Read returns; Exec never closes what it was handed.
func (c *Client) Exec(ctx context.Context, container string, req ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Exec(ctx)
	if err != nil {
		return -1, c.fromStatus(err)
	}
	start := &apiv1.ExecStart{Container: container, Args: req.Args, Env: req.Env}
	if err := stream.Send(&apiv1.ExecRequest{Msg: &apiv1.ExecRequest_Start{Start: start}}); err != nil {
		return -1, c.execErr(stream, err)
	}

	// This goroutine is the only sender from here on; it ends when stdin
	// does or, through cancel, when the call does.
	go func() {
		if stdin != nil {
			buf := make([]byte, 32<<10)
			for {
				n, rerr := stdin.Read(buf)
				if n > 0 {
					chunk := append([]byte(nil), buf[:n]...)
					if stream.Send(&apiv1.ExecRequest{Msg: &apiv1.ExecRequest_Stdin{Stdin: chunk}}) != nil {
						return
					}
				}
				if rerr != nil {
					break
				}
			}
		}
		if stream.Send(&apiv1.ExecRequest{Msg: &apiv1.ExecRequest_StdinClose{StdinClose: true}}) == nil {
			stream.CloseSend()
		}
	}()

	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return -1, errors.New("exec: berthd ended the call without an exit code")
		}
		if err != nil {
			return -1, c.fromStatus(err)
		}
		switch m := msg.GetMsg().(type) {
		case *apiv1.ExecResponse_Stdout:
			if _, err := stdout.Write(m.Stdout); err != nil {
				return -1, fmt.Errorf("exec: write stdout: %w", err)
			}
		case *apiv1.ExecResponse_Stderr:
			if _, err := stderr.Write(m.Stderr); err != nil {
				return -1, fmt.Errorf("exec: write stderr: %w", err)
			}
		case *apiv1.ExecResponse_ExitCode:
			return int(m.ExitCode), nil
		}
	}
}

// execErr turns a failed Send into the call's real error, which Recv gives.
func (c *Client) execErr(stream apiv1.Berth_ExecClient, sendErr error) error {
	if sendErr == io.EOF {
		if _, err := stream.Recv(); err != nil && err != io.EOF {
			return c.fromStatus(err)
		}
	}
	return c.fromStatus(sendErr)
}

func (c *Client) Images(ctx context.Context) ([]Image, error) {
	resp, err := c.rpc.Images(ctx, &apiv1.ImagesRequest{})
	if err != nil {
		return nil, c.fromStatus(err)
	}
	return imagesFromProto(resp.GetImages()), nil
}

// ImportImage uploads the archive at path, a file on the client's side, and
// returns the images berthd imported from it.
func (c *Client) ImportImage(ctx context.Context, path string) ([]Image, error) {
	return c.ImportImageNamed(ctx, path, "")
}

// ImportImageNamed is ImportImage giving the image the reference ref; a
// berthd whose Backend is not a NamedImporter refuses it with ErrUnsupported.
func (c *Client) ImportImageNamed(ctx context.Context, path, ref string) ([]Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("import image: %w", err)
	}
	defer f.Close()
	return c.ImportImageFrom(ctx, f, ref)
}

// ImportImageFrom uploads an archive read from r (until io.EOF) and gives
// the image the reference ref when it is not empty. r is not closed.
func (c *Client) ImportImageFrom(ctx context.Context, r io.Reader, ref string) ([]Image, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.ImportImage(ctx)
	if err != nil {
		return nil, c.fromStatus(err)
	}
	buf := make([]byte, chunkSize)
	first := true
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 || first {
			msg := &apiv1.ImportImageRequest{Chunk: buf[:n]}
			if first {
				msg.Name = ref
				first = false
			}
			if err := stream.Send(msg); err != nil {
				if err == io.EOF { // the server ended the call; its status says why
					_, err = stream.CloseAndRecv()
				}
				return nil, c.fromStatus(err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("import image: read archive: %w", rerr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, c.fromStatus(err)
	}
	return imagesFromProto(resp.GetImages()), nil
}

func (c *Client) RemoveImage(ctx context.Context, ref string) error {
	_, err := c.rpc.RemoveImage(ctx, &apiv1.RemoveImageRequest{Ref: ref})
	return c.fromStatus(err)
}

// Version returns berthd's version and the OCI runtime it uses.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	resp, err := c.rpc.Version(ctx, &apiv1.VersionRequest{})
	if err != nil {
		return VersionInfo{}, c.fromStatus(err)
	}
	return VersionInfo{Version: resp.GetVersion(), Runtime: resp.GetRuntime()}, nil
}

// Devices returns the board berthd runs and its devices.
func (c *Client) Devices(ctx context.Context) (Devices, error) {
	resp, err := c.rpc.Devices(ctx, &apiv1.DevicesRequest{})
	if err != nil {
		return Devices{}, c.fromStatus(err)
	}
	return devicesFromProto(resp), nil
}
