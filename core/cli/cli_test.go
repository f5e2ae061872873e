package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/core/api/apitest"
	"github.com/berth-io/berth/core/cli"
)

type result struct {
	code           int
	stdout, stderr string
}

// run runs berth with args against the socket sock (if not empty).
func run(t *testing.T, sock string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if sock != "" {
		args = append([]string{"--host", sock}, args...)
	}
	var out, errOut bytes.Buffer
	code := cli.Run(ctx, args, cli.Streams{In: strings.NewReader(stdin), Out: &out, Err: &errOut})
	return result{code, out.String(), errOut.String()}
}

func (r result) expect(t *testing.T, code int, stdout ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodPlaybook = `stack "demo" {
  container "db" {
    images = ["berth.local/db:1"]
  }
  container "app" {
    images = ["berth.local/base:1", "berth.local/app:2"]
    depends_on "db" {}
  }
}
`

func twoStacks() []api.ContainerStatus {
	now := time.Now()
	return []api.ContainerStatus{
		{Stack: "demo", Name: "db", Images: []string{"db:1"}, State: "running", Health: "healthy", PID: 4242,
			StartedAt: now.Add(-3*time.Minute - 10*time.Second), Restarts: 1, Networks: map[string]string{"back": "10.88.0.2", "front": "10.89.0.2"}},
		{Stack: "demo", Name: "job", Images: []string{"base:1", "job:1"}, State: "exited", ExitCode: 3,
			StartedAt: now.Add(-time.Hour), FinishedAt: now.Add(-2*time.Minute - 5*time.Second)},
		{Stack: "other", Name: "db", Images: []string{"db:1"}, State: "paused", PID: 99, StartedAt: now.Add(-30 * time.Second)},
	}
}

func TestPs(t *testing.T) {
	sock := apitest.Serve(t, &apitest.Backend{ContainersFn: func(context.Context) ([]api.ContainerStatus, error) { return twoStacks(), nil }})

	r := run(t, sock, "", "ps")
	r.expect(t, 0)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 { // header + two active containers; the exited one is hidden
		t.Fatalf("ps printed %d lines, want 3:\n%s", len(lines), r.stdout)
	}
	for _, f := range []string{"NAME", "STACK", "STATE", "HEALTH", "PID", "STATUS", "RESTARTS", "IMAGES", "NETWORKS"} {
		if !strings.Contains(lines[0], f) {
			t.Errorf("header %q lacks %s", lines[0], f)
		}
	}
	wantDB := []string{"db", "demo", "running", "healthy", "4242", "Up 3 minutes", "1", "db:1", "back=10.88.0.2,front=10.89.0.2"}
	if got := strings.Fields(strings.ReplaceAll(lines[1], "Up 3 minutes", "Up_3_minutes")); strings.Join(got, "|") != strings.ReplaceAll(strings.Join(wantDB, "|"), "Up 3 minutes", "Up_3_minutes") {
		t.Errorf("db row = %q, want fields %q", lines[1], wantDB)
	}
	if !strings.Contains(lines[2], "Up 30 seconds (Paused)") {
		t.Errorf("paused row = %q", lines[2])
	}

	r = run(t, sock, "", "ps", "-a")
	r.expect(t, 0, "Exited (3) 2 minutes ago", "job:1 (+1)")

	r = run(t, sock, "", "ps", "-a", "--json")
	r.expect(t, 0)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("ps --json = %v rows, %v:\n%s", len(rows), err, r.stdout)
	}
	if rows[0]["name"] != "db" || rows[0]["pid"] != float64(4242) || rows[1]["exit_code"] != float64(3) {
		t.Errorf("ps --json rows = %v", rows)
	}
}

func TestPsSaysWhyAContainerIsDown(t *testing.T) {
	cs := []api.ContainerStatus{
		{Stack: "demo", Name: "nocmd", State: "restarting", Restarts: 2,
			Message: `exec: "/bin/does-not-exist": no such file or directory`},
		{Stack: "demo", Name: "db", State: "running", Health: "unhealthy", PID: 7, StartedAt: time.Now(),
			Message: "health check failed 3 times: kvdb -ping exited 1"},
	}
	sock := apitest.Serve(t, &apitest.Backend{ContainersFn: func(context.Context) ([]api.ContainerStatus, error) { return cs, nil }})
	run(t, sock, "", "ps").expect(t, 0, "Restarting (start failed)",
		"demo/nocmd: exec: \"/bin/does-not-exist\": no such file or directory",
		"demo/db: health check failed 3 times: kvdb -ping exited 1")
	run(t, sock, "", "ps", "--json").expect(t, 0, `"message": "health check failed 3 times`)
}

func TestImages(t *testing.T) {
	created := time.Now().Add(-50 * time.Hour)
	sock := apitest.Serve(t, &apitest.Backend{ImagesFn: func(context.Context) ([]api.Image, error) {
		return []api.Image{{Ref: "berth.local/app:2", Digest: "sha256:0123456789abcdef0123", Size: 1258291, Created: created}}, nil
	}})
	r := run(t, sock, "", "images")
	r.expect(t, 0, "REF", "DIGEST", "SIZE", "CREATED", "berth.local/app:2", "0123456789ab ", "1.2 MiB", "2 days ago")
	if strings.Contains(r.stdout, "0123456789abc") {
		t.Errorf("digest not cut to 12: %s", r.stdout)
	}
	r = run(t, sock, "", "image", "ls", "--json")
	r.expect(t, 0, `"digest": "sha256:0123456789abcdef0123"`, `"size": 1258291`)
}

func TestImageImportAndRemove(t *testing.T) {
	var got []byte
	sock := apitest.Serve(t, &apitest.Backend{
		ImportImageFn: func(_ context.Context, path string) ([]api.Image, error) {
			var err error
			got, err = os.ReadFile(path)
			return []api.Image{{Ref: "app:1", Digest: "sha256:abcdefabcdefabcdef", Size: 2048}}, err
		},
		RemoveImageFn: func(_ context.Context, ref string) error {
			if ref == "used:1" {
				return fmt.Errorf("image %s is used by demo/app: %w", ref, api.ErrConflict)
			}
			return nil
		},
	})
	archive := writeFile(t, "app.tar", "not really a tar")
	run(t, sock, "", "image", "import", archive).expect(t, 0, "Imported app:1 (abcdefabcdef, 2.0 KiB)")
	if string(got) != "not really a tar" {
		t.Fatalf("berthd got %q", got)
	}
	r := run(t, sock, "", "image", "import", archive, "--name", "mine:1")
	r.expect(t, 1)
	if !strings.Contains(r.stderr, "cannot name imported images") {
		t.Errorf("stderr = %q", r.stderr)
	}
	r = run(t, sock, "", "image", "rm", "old:1", "used:1")
	r.expect(t, 1, "Removed old:1")
	if !strings.Contains(r.stderr, "berth: remove image used:1: image used:1 is used by demo/app: conflict\n") {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestPlan(t *testing.T) {
	var gotReq api.ApplyRequest
	b := &apitest.Backend{PlanFn: func(_ context.Context, req api.ApplyRequest) (*api.Plan, error) {
		gotReq = req
		return &api.Plan{Stack: "demo", Actions: []api.Action{
			{Container: "db", Kind: api.ActionCreate},
			{Container: "app", Kind: api.ActionReplace, Reason: "images changed"},
			{Container: "old", Kind: api.ActionRemove},
			{Container: "cache", Kind: api.ActionUnchanged},
		}}, nil
	}}
	sock := apitest.Serve(t, b)
	pb := writeFile(t, "playbook.hcl", goodPlaybook)
	r := run(t, sock, "", "plan", "-var", "tag=2", pb)
	r.expect(t, 0, "+ create db\n", "~ replace app (images changed)\n", "- remove old\n",
		`Plan for stack "demo": 1 to create, 1 to replace, 1 to remove, 1 unchanged.`)
	if gotReq.File != pb || string(gotReq.Source) != goodPlaybook || gotReq.Vars["tag"] != "2" {
		t.Errorf("berthd got %+v", gotReq)
	}
	r = run(t, sock, "", "plan", "--json", pb)
	r.expect(t, 0, `"action": "replace"`, `"reason": "images changed"`)
}

// A missing image comes back as a diagnostic and is printed against the
// user's copy of the file, with its line.
func TestPlanDiagnostics(t *testing.T) {
	pb := writeFile(t, "playbook.hcl", goodPlaybook)
	b := &apitest.Backend{PlanFn: func(_ context.Context, req api.ApplyRequest) (*api.Plan, error) {
		rng := &hcl.Range{Filename: req.File, Start: hcl.Pos{Line: 3, Column: 15, Byte: 46}, End: hcl.Pos{Line: 3, Column: 33, Byte: 64}}
		return nil, &api.DiagnosticsError{Diags: hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Missing image",
			Detail: "berth.local/db:1 is not in the store: import it with berth image import.", Subject: rng}}}
	}}
	r := run(t, apitest.Serve(t, b), "", "plan", pb)
	r.expect(t, 1)
	for _, want := range []string{"Missing image", "on " + pb + " line 3", `images = ["berth.local/db:1"]`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

func TestUp(t *testing.T) {
	pb := writeFile(t, "playbook.hcl", goodPlaybook)
	b := &apitest.Backend{UpFn: func(_ context.Context, _ api.ApplyRequest, progress func(api.Event)) (*api.Plan, error) {
		progress(api.Event{Time: time.Now(), Container: "db", Message: "started"})
		return &api.Plan{Stack: "demo", Actions: []api.Action{{Container: "db", Kind: api.ActionCreate}}}, nil
	}}
	sock := apitest.Serve(t, b)
	run(t, sock, "", "up", pb).expect(t, 0, "db           started\n", `Stack "demo" is up: 1 created, 0 replaced, 0 removed, 0 unchanged.`)

	b.UpFn = func(context.Context, api.ApplyRequest, func(api.Event)) (*api.Plan, error) {
		return nil, fmt.Errorf("start demo/db: runc: exit status 1")
	}
	r := run(t, sock, "", "up", pb)
	r.expect(t, 1)
	if r.stderr != "berth: up "+pb+": start demo/db: runc: exit status 1\n" {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestDownNeedsTheStackNamed(t *testing.T) {
	var downed string
	cs := twoStacks()[:2]
	b := &apitest.Backend{
		ContainersFn: func(context.Context) ([]api.ContainerStatus, error) { return cs, nil },
		DownFn:       func(_ context.Context, s string, _ func(api.Event)) error { downed = s; return nil },
	}
	sock := apitest.Serve(t, b)
	r := run(t, sock, "", "down")
	r.expect(t, 2)
	if downed != "" || !strings.Contains(r.stderr, "name the stack to stop, e.g. berth down demo (running: demo)") {
		t.Errorf("bare down: downed %q, stderr %q", downed, r.stderr)
	}
	cs = twoStacks()
	r = run(t, sock, "", "down")
	r.expect(t, 2)
	if !strings.Contains(r.stderr, "(running: demo, other)") {
		t.Errorf("stderr = %q", r.stderr)
	}
	run(t, sock, "", "down", "demo").expect(t, 0, `Stack "demo" is down.`)
	if downed != "demo" {
		t.Fatalf("downed %q", downed)
	}
}

func TestContainerNames(t *testing.T) {
	var paused []string
	b := &apitest.Backend{
		ContainersFn: func(context.Context) ([]api.ContainerStatus, error) { return twoStacks(), nil },
		PauseFn:      func(_ context.Context, n string) error { paused = append(paused, n); return nil },
	}
	sock := apitest.Serve(t, b)
	tests := []struct {
		arg    string
		code   int
		paused string
		stderr string
	}{
		{"job", 0, "demo/job", ""},
		{"other/db", 0, "other/db", ""},
		{"db", 2, "", `berth: container name "db" is in several stacks (demo, other): write stack/name, e.g. demo/db`},
		{"nope", 1, "", `berth: no container "nope": not found: see berth ps -a`},
	}
	for _, tt := range tests {
		paused = nil
		r := run(t, sock, "", "pause", tt.arg)
		r.expect(t, tt.code)
		if tt.paused != "" && (len(paused) != 1 || paused[0] != tt.paused) {
			t.Errorf("pause %s paused %q, want %q", tt.arg, paused, tt.paused)
		}
		if strings.TrimSpace(r.stderr) != tt.stderr {
			t.Errorf("pause %s stderr = %q, want %q", tt.arg, r.stderr, tt.stderr)
		}
	}
}

func TestLogs(t *testing.T) {
	ts := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var gotOpts api.LogOptions
	b := &apitest.Backend{
		ContainersFn: func(context.Context) ([]api.ContainerStatus, error) { return twoStacks(), nil },
		LogsFn: func(_ context.Context, _ string, opts api.LogOptions, emit func(api.LogLine) error) error {
			gotOpts = opts
			emit(api.LogLine{Time: ts, Stream: "stdout", Text: "ready"})
			return emit(api.LogLine{Time: ts, Stream: "stderr", Text: "warning: slow disk"})
		},
	}
	sock := apitest.Serve(t, b)
	r := run(t, sock, "", "logs", "--tail", "5", "--timestamps", "job")
	r.expect(t, 0)
	if r.stdout != "2025-03-01T12:00:00Z ready\n" || r.stderr != "2025-03-01T12:00:00Z warning: slow disk\n" {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	if gotOpts.Tail != 5 || gotOpts.Follow {
		t.Errorf("opts = %+v", gotOpts)
	}
}

func TestExecExitCode(t *testing.T) {
	b := &apitest.Backend{
		ContainersFn: func(context.Context) ([]api.ContainerStatus, error) { return twoStacks(), nil },
		ExecFn: func(_ context.Context, name string, req api.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
			in, _ := io.ReadAll(stdin)
			fmt.Fprintf(stdout, "%s %q stdin=%q", name, req.Args, in)
			fmt.Fprint(stderr, "to stderr")
			return 42, nil
		},
	}
	sock := apitest.Serve(t, b)
	r := run(t, sock, "hello", "exec", "-i", "job", "--", "sh", "-c", "exit 42")
	r.expect(t, 42, `demo/job ["sh" "-c" "exit 42"] stdin="hello"`)
	if r.stderr != "to stderr" {
		t.Errorf("stderr = %q", r.stderr)
	}
	// Without -i the command's stdin is empty.
	run(t, sock, "hello", "exec", "job", "cat").expect(t, 42, `stdin=""`)
	run(t, sock, "", "exec", "job").expect(t, 2)
}

func TestValidate(t *testing.T) {
	good := writeFile(t, "playbook.hcl", goodPlaybook)
	run(t, "", "", "validate", good).expect(t, 0, good+`: stack "demo" is valid (2 containers)`)

	bad := writeFile(t, "bad.hcl", `stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    restart { policy = "sometimes" }
  }
}
`)
	r := run(t, "", "", "validate", bad)
	r.expect(t, 1)
	if !strings.Contains(r.stderr, "Invalid restart policy") || !strings.Contains(r.stderr, "on "+bad+" line 4") {
		t.Errorf("stderr lacks the diagnostic with its line:\n%s", r.stderr)
	}
	r = run(t, "", "", "validate", "--json", bad)
	r.expect(t, 1, `"valid": false`, `"line": 4`, `"column": 24`)

	r = run(t, "", "", "validate", filepath.Join(t.TempDir(), "missing.hcl"))
	r.expect(t, 1)
	if !strings.HasPrefix(r.stderr, "berth: read ") || !strings.Contains(r.stderr, "check the path") {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestFmt(t *testing.T) {
	ugly := "stack \"s\" {\n  container \"a\" {\n    images=[\"berth.local/a:1\"]\n  }\n}\n"
	pretty := "stack \"s\" {\n  container \"a\" {\n    images = [\"berth.local/a:1\"]\n  }\n}\n"
	f := writeFile(t, "p.hcl", ugly)

	r := run(t, "", "", "fmt", "-check", "-diff", f)
	r.expect(t, 3, f+"\n", "-    images=[\"berth.local/a:1\"]\n", "+    images = [\"berth.local/a:1\"]\n")
	if b, _ := os.ReadFile(f); string(b) != ugly {
		t.Fatal("fmt -check wrote the file")
	}
	run(t, "", "", "fmt", f).expect(t, 0, f+"\n")
	if b, _ := os.ReadFile(f); string(b) != pretty {
		t.Fatalf("fmt wrote %q", b)
	}
	r = run(t, "", "", "fmt", "--check", f)
	r.expect(t, 0)
	if r.stdout != "" {
		t.Errorf("formatted file listed: %q", r.stdout)
	}
	run(t, "", ugly, "fmt", "-").expect(t, 0, pretty)

	broken := writeFile(t, "broken.hcl", "stack \"s\" {\n")
	r = run(t, "", "", "fmt", broken)
	r.expect(t, 1)
	if !strings.Contains(r.stderr, broken) {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "berthd.sock")
	for _, args := range [][]string{{"ps"}, {"images"}, {"pause", "db"}} {
		r := run(t, sock, "", args...)
		r.expect(t, 125)
		want := "berth: cannot reach berthd at " + sock + ": is berthd running? (start it with `berthd` or `systemctl start berthd`; set --host / BERTH_HOST for another socket)\n"
		if r.stderr != want {
			t.Errorf("%v stderr = %q, want %q", args, r.stderr, want)
		}
	}
	// version still answers for the client.
	run(t, sock, "", "version").expect(t, 0, "Client: berth dev", "Server: not reachable")
}

func TestVersion(t *testing.T) {
	sock := apitest.Serve(t, &apitest.Backend{VersionFn: func(context.Context) (api.VersionInfo, error) {
		return api.VersionInfo{Version: "1.2.3", Runtime: "runc 1.1.5"}, nil
	}})
	run(t, sock, "", "version").expect(t, 0, "Client: berth dev\n", "Server: berthd 1.2.3 (runtime runc 1.1.5)\n")
	run(t, sock, "", "version", "--json").expect(t, 0, `"runtime": "runc 1.1.5"`)
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"nope"}, {"ps", "--bogus"}, {"validate"}, {"plan", "-var", "novalue", "x.hcl"}} {
		r := run(t, "", "", args...)
		r.expect(t, 2)
		if !strings.HasPrefix(r.stderr, "berth: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v stderr = %q, want one berth: line", args, r.stderr)
		}
	}
	r := run(t, "", "", "--help")
	r.expect(t, 0, "Exit codes:", "125  berthd could not be reached", "stack/name")
}
