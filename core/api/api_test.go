package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/core/api/apitest"
)

// wait bounds every wait in these tests.
const wait = 5 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestPlanAndUpRoundTrip(t *testing.T) {
	want := &api.Plan{Stack: "demo", Actions: []api.Action{
		{Container: "db", Kind: api.ActionCreate},
		{Container: "app", Kind: api.ActionReplace, Reason: "images changed"},
		{Container: "old", Kind: api.ActionRemove},
	}}
	req := api.ApplyRequest{File: "playbook.hcl", Source: []byte(`stack "demo" {}`), Vars: map[string]string{"tag": "1.2"}}
	events := []api.Event{{Time: t0, Container: "db", Message: "created"}, {Time: t0.Add(time.Second), Container: "app", Message: "started"}}
	b := &apitest.Backend{
		PlanFn: func(_ context.Context, got api.ApplyRequest) (*api.Plan, error) {
			if !reflect.DeepEqual(got, req) {
				return nil, fmt.Errorf("plan got %+v", got)
			}
			return want, nil
		},
		UpFn: func(_ context.Context, got api.ApplyRequest, progress func(api.Event)) (*api.Plan, error) {
			if !reflect.DeepEqual(got, req) {
				return nil, fmt.Errorf("up got %+v", got)
			}
			for _, e := range events {
				progress(e)
			}
			return want, nil
		},
	}
	c := apitest.Dial(t, b)

	got, err := c.Plan(ctxT(t), req)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Plan = %+v, %v; want %+v", got, err, want)
	}
	var gotEvents []api.Event
	got, err = c.Up(ctxT(t), req, func(e api.Event) { gotEvents = append(gotEvents, e) })
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Up = %+v, %v; want %+v", got, err, want)
	}
	if !reflect.DeepEqual(gotEvents, events) {
		t.Fatalf("Up events = %+v, want %+v", gotEvents, events)
	}
}

func TestDownStreamsEvents(t *testing.T) {
	b := &apitest.Backend{DownFn: func(_ context.Context, stack string, progress func(api.Event)) error {
		if stack != "demo" {
			return fmt.Errorf("stack %q: %w", stack, api.ErrNotFound)
		}
		progress(api.Event{Time: t0, Container: "app", Message: "stopped"})
		return nil
	}}
	c := apitest.Dial(t, b)
	var got []api.Event
	if err := c.Down(ctxT(t), "demo", func(e api.Event) { got = append(got, e) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Message != "stopped" || !got[0].Time.Equal(t0) {
		t.Fatalf("events = %+v", got)
	}
	if err := c.Down(ctxT(t), "nope", nil); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), `stack "nope"`) {
		t.Fatalf("Down(nope) = %v, want ErrNotFound with the server's message", err)
	}
}

func TestContainersPauseResume(t *testing.T) {
	want := []api.ContainerStatus{
		{Stack: "demo", Name: "db", Images: []string{"base:1", "db:2"}, State: "running", Health: "healthy",
			PID: 4242, StartedAt: t0, Restarts: 2, Networks: map[string]string{"backend": "10.88.0.2"}},
		{Stack: "demo", Name: "job", Images: []string{"job:1"}, State: "exited", StartedAt: t0,
			FinishedAt: t0.Add(time.Minute), ExitCode: 3},
	}
	var calls []string
	b := &apitest.Backend{
		ContainersFn: func(context.Context) ([]api.ContainerStatus, error) { return want, nil },
		PauseFn:      func(_ context.Context, n string) error { calls = append(calls, "pause "+n); return nil },
		ResumeFn:     func(_ context.Context, n string) error { calls = append(calls, "resume "+n); return nil },
	}
	c := apitest.Dial(t, b)
	got, err := c.Containers(ctxT(t))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Containers = %+v, %v\nwant %+v", got, err, want)
	}
	if err := c.Pause(ctxT(t), "demo/db"); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(ctxT(t), "demo/db"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"pause demo/db", "resume demo/db"}; !reflect.DeepEqual(calls, want) {
		t.Fatalf("calls = %q, want %q", calls, want)
	}
}

func TestLogs(t *testing.T) {
	lines := []api.LogLine{{Time: t0, Stream: "stdout", Text: "hello"}, {Time: t0, Stream: "stderr", Text: "oops"}}
	b := &apitest.Backend{LogsFn: func(_ context.Context, name string, opts api.LogOptions, emit func(api.LogLine) error) error {
		if name != "demo/app" || opts.Tail != 2 {
			return fmt.Errorf("logs %q %+v: %w", name, opts, api.ErrInvalid)
		}
		for _, l := range lines {
			if err := emit(l); err != nil {
				return err
			}
		}
		return nil
	}}
	c := apitest.Dial(t, b)
	var got []api.LogLine
	err := c.Logs(ctxT(t), "demo/app", api.LogOptions{Tail: 2}, func(l api.LogLine) error { got = append(got, l); return nil })
	if err != nil || !reflect.DeepEqual(got, lines) {
		t.Fatalf("Logs = %+v, %v", got, err)
	}
	// An emit error ends the call with that error.
	stop := errors.New("enough")
	err = c.Logs(ctxT(t), "demo/app", api.LogOptions{Tail: 2}, func(api.LogLine) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("Logs with failing emit = %v, want %v", err, stop)
	}
}

// Cancelling the caller's ctx ends a stream on both sides: the Backend sees
// its ctx end, a followed Logs returns nil (its contract), Up returns
// context.Canceled.
func TestStreamsEndOnCancel(t *testing.T) {
	backendDone := make(chan string, 2)
	b := &apitest.Backend{
		LogsFn: func(ctx context.Context, _ string, _ api.LogOptions, emit func(api.LogLine) error) error {
			if err := emit(api.LogLine{Text: "first"}); err != nil {
				return err
			}
			<-ctx.Done()
			backendDone <- "logs"
			return nil
		},
		UpFn: func(ctx context.Context, _ api.ApplyRequest, progress func(api.Event)) (*api.Plan, error) {
			progress(api.Event{Message: "starting"})
			<-ctx.Done()
			backendDone <- "up"
			return nil, ctx.Err()
		},
	}
	c := apitest.Dial(t, b)

	ctx, cancel := context.WithCancel(ctxT(t))
	err := c.Logs(ctx, "x", api.LogOptions{Follow: true}, func(api.LogLine) error { cancel(); return nil })
	if err != nil {
		t.Fatalf("followed Logs after cancel = %v, want nil", err)
	}
	expectDone(t, backendDone, "logs")

	ctx, cancel = context.WithCancel(ctxT(t))
	_, err = c.Up(ctx, api.ApplyRequest{}, func(api.Event) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Up after cancel = %v, want context.Canceled", err)
	}
	expectDone(t, backendDone, "up")
}

func expectDone(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("backend call that ended = %q, want %q", got, want)
		}
	case <-time.After(wait):
		t.Fatalf("backend %s did not see its ctx end", want)
	}
}

func TestExec(t *testing.T) {
	b := &apitest.Backend{ExecFn: func(_ context.Context, name string, req api.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
		if name != "demo/app" || !reflect.DeepEqual(req.Args, []string{"sh", "-c", "cat"}) || !reflect.DeepEqual(req.Env, []string{"A=1"}) {
			return -1, fmt.Errorf("exec %q %+v: %w", name, req, api.ErrInvalid)
		}
		in, err := io.ReadAll(stdin)
		if err != nil {
			return -1, err
		}
		fmt.Fprintf(stdout, "out:%s", in)
		fmt.Fprint(stderr, "err:done")
		return 7, nil
	}}
	c := apitest.Dial(t, b)
	big := strings.Repeat("x", 600<<10) // several chunks each way
	var stdout, stderr bytes.Buffer
	code, err := c.Exec(ctxT(t), "demo/app", api.ExecRequest{Args: []string{"sh", "-c", "cat"}, Env: []string{"A=1"}},
		strings.NewReader(big), &stdout, &stderr)
	if err != nil || code != 7 {
		t.Fatalf("Exec = %d, %v; want 7", code, err)
	}
	if stdout.String() != "out:"+big || stderr.String() != "err:done" {
		t.Fatalf("stdout %d bytes, stderr %q", stdout.Len(), stderr.String())
	}

	// A Backend that never reads stdin still finishes; a nil stdin is empty.
	b.ExecFn = func(_ context.Context, _ string, _ api.ExecRequest, _ io.Reader, stdout, _ io.Writer) (int, error) {
		fmt.Fprint(stdout, "hi")
		return 0, nil
	}
	stdout.Reset()
	if code, err := c.Exec(ctxT(t), "demo/app", api.ExecRequest{Args: []string{"true"}}, nil, &stdout, io.Discard); err != nil || code != 0 || stdout.String() != "hi" {
		t.Fatalf("Exec = %d, %v, %q", code, err, stdout.String())
	}
}

func TestImages(t *testing.T) {
	imgs := []api.Image{{Ref: "app:1.0", Digest: "sha256:0123456789abcdef", Size: 1234567, Created: t0}}
	archive := bytes.Repeat([]byte("layer"), 200<<10) // ~1 MiB: several chunks
	var removed []string
	var importedPath string
	b := &apitest.Backend{
		ImagesFn: func(context.Context) ([]api.Image, error) { return imgs, nil },
		ImportImageFn: func(_ context.Context, path string) ([]api.Image, error) {
			importedPath = path
			got, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(got, archive) {
				return nil, fmt.Errorf("archive: got %d bytes, want %d: %w", len(got), len(archive), api.ErrInvalid)
			}
			return imgs, nil
		},
		RemoveImageFn: func(_ context.Context, ref string) error {
			if ref != "app:1.0" {
				return fmt.Errorf("remove image %s: %w", ref, api.ErrNotFound)
			}
			removed = append(removed, ref)
			return nil
		},
		VersionFn: func(context.Context) (api.VersionInfo, error) {
			return api.VersionInfo{Version: "1.2.3", Runtime: "runc 1.1.5"}, nil
		},
	}
	c := apitest.Dial(t, b)

	got, err := c.Images(ctxT(t))
	if err != nil || !reflect.DeepEqual(got, imgs) {
		t.Fatalf("Images = %+v, %v", got, err)
	}
	src := filepath.Join(t.TempDir(), "app.tar")
	if err := os.WriteFile(src, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = c.ImportImage(ctxT(t), src)
	if err != nil || !reflect.DeepEqual(got, imgs) {
		t.Fatalf("ImportImage = %+v, %v", got, err)
	}
	if _, err := os.Stat(importedPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("server left the uploaded archive at %s (stat: %v)", importedPath, err)
	}
	// This Backend is no NamedImporter: a name is refused, not ignored.
	if _, err := c.ImportImageNamed(ctxT(t), src, "mine:1"); !errors.Is(err, api.ErrUnsupported) {
		t.Fatalf("ImportImageNamed on a plain Backend = %v, want ErrUnsupported", err)
	}
	if err := c.RemoveImage(ctxT(t), "app:1.0"); err != nil || !reflect.DeepEqual(removed, []string{"app:1.0"}) {
		t.Fatalf("RemoveImage = %v, removed %q", err, removed)
	}
	if err := c.RemoveImage(ctxT(t), "nope:1"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("RemoveImage(nope) = %v, want ErrNotFound", err)
	}
	v, err := c.Version(ctxT(t))
	if err != nil || v.Version != "1.2.3" || v.Runtime != "runc 1.1.5" {
		t.Fatalf("Version = %+v, %v", v, err)
	}
}

type namedImporter struct {
	apitest.Backend
	gotRef string
}

func (n *namedImporter) ImportImageNamed(_ context.Context, _ string, ref string) ([]api.Image, error) {
	n.gotRef = ref
	return []api.Image{{Ref: ref}}, nil
}

func TestImportImageNamed(t *testing.T) {
	b := &namedImporter{}
	c := apitest.Dial(t, b)
	imgs, err := c.ImportImageFrom(ctxT(t), strings.NewReader("archive"), "mine:1")
	if err != nil || b.gotRef != "mine:1" || len(imgs) != 1 || imgs[0].Ref != "mine:1" {
		t.Fatalf("ImportImageFrom = %+v, %v (backend got %q)", imgs, err, b.gotRef)
	}
}

func TestErrorsMapBothWays(t *testing.T) {
	tests := []struct {
		name    string
		backend error
		want    error
	}{
		{"not found", fmt.Errorf("pause demo/db: %w", api.ErrNotFound), api.ErrNotFound},
		{"already exists", fmt.Errorf("create: %w", api.ErrAlreadyExists), api.ErrAlreadyExists},
		{"conflict", fmt.Errorf("pause demo/db: container is exited: %w", api.ErrConflict), api.ErrConflict},
		{"invalid", fmt.Errorf("pause: empty name: %w", api.ErrInvalid), api.ErrInvalid},
		{"unsupported", fmt.Errorf("pause: %w", api.ErrUnsupported), api.ErrUnsupported},
		{"internal", errors.New("cgroup freeze: device busy"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := apitest.Dial(t, &apitest.Backend{PauseFn: func(context.Context, string) error { return tt.backend }})
			err := c.Pause(ctxT(t), "demo/db")
			if err == nil || err.Error() != tt.backend.Error() {
				t.Fatalf("Pause = %v, want the message %q", err, tt.backend.Error())
			}
			for _, s := range []error{api.ErrNotFound, api.ErrAlreadyExists, api.ErrConflict, api.ErrInvalid, api.ErrUnsupported} {
				if errors.Is(err, s) != (s == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, !(s == tt.want))
				}
			}
		})
	}
}

func TestDiagnosticsSurviveTheTrip(t *testing.T) {
	subject := &hcl.Range{Filename: "playbook.hcl", Start: hcl.Pos{Line: 4, Column: 15, Byte: 60}, End: hcl.Pos{Line: 4, Column: 22, Byte: 67}}
	ctxRange := &hcl.Range{Filename: "playbook.hcl", Start: hcl.Pos{Line: 3, Column: 3, Byte: 40}, End: hcl.Pos{Line: 5, Column: 4, Byte: 80}}
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Missing image", Detail: `Image "db:9" is not in the store; import it with berth image import.`, Subject: subject, Context: ctxRange},
		{Severity: hcl.DiagWarning, Summary: "No health check", Detail: "Add a health block."},
	}
	b := &apitest.Backend{PlanFn: func(context.Context, api.ApplyRequest) (*api.Plan, error) {
		return nil, fmt.Errorf("plan: %w", &api.DiagnosticsError{Diags: diags})
	}}
	c := apitest.Dial(t, b)
	_, err := c.Plan(ctxT(t), api.ApplyRequest{File: "playbook.hcl"})
	var de *api.DiagnosticsError
	if !errors.As(err, &de) {
		t.Fatalf("Plan = %v (%T), want *DiagnosticsError", err, err)
	}
	if !reflect.DeepEqual(de.Diags, diags) {
		t.Fatalf("diagnostics changed on the way:\n got %#v\nwant %#v", de.Diags, diags)
	}
	if s := de.Diags[0].Subject; s.Filename != "playbook.hcl" || s.Start.Line != 4 || s.Start.Column != 15 {
		t.Fatalf("subject = %v, want playbook.hcl:4,15", s)
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sub", "berthd.sock")
	l, err := api.Listen(sock, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
	// A live socket is not taken over.
	if _, err := api.Listen(sock, 0, -1); !errors.Is(err, api.ErrAlreadyExists) {
		t.Fatalf("Listen on a live socket = %v, want ErrAlreadyExists", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the socket file: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(sock)); len(entries) != 0 {
		t.Fatalf("Listen left files behind: %v", entries)
	}

	// A stale socket (nobody listening) is replaced; the mode is honoured.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	l, err = api.Listen(sock, 0o660, os.Getgid())
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer l.Close()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode = %v, %v; want 0660", fi.Mode(), err)
	}

	// Any other file is left alone.
	regular := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(regular, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Listen(regular, 0, -1); err == nil {
		t.Fatal("Listen replaced a regular file")
	}
	if b, _ := os.ReadFile(regular); string(b) != "keep" {
		t.Fatal("Listen changed a regular file")
	}
}

func TestDialUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "berthd.sock")
	_, err := api.Dial(ctxT(t), sock)
	if !errors.Is(err, api.ErrUnreachable) {
		t.Fatalf("Dial(missing) = %v, want ErrUnreachable", err)
	}
	for _, want := range []string{"cannot reach berthd at " + sock, "is berthd running?", "BERTH_HOST"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}
