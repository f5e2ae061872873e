package oci

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Runtime is one OCI runtime binary (runc or crun; both share this command
// line) with its state directory. A Runtime is a plain value: it holds no
// open resources and is safe for concurrent use.
type Runtime struct {
	Name string       // "runc", "crun" or the base name of Path
	Path string       // absolute path of the binary
	Root string       // the runtime's --root state directory; "" for its default
	Log  *slog.Logger // never nil after New
}

// Option configures New.
type Option func(*Runtime)

// WithRoot sets the runtime's --root state directory.
func WithRoot(dir string) Option { return func(r *Runtime) { r.Root = dir } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(r *Runtime) { r.Log = l } }

// searchDirs are looked at after PATH: a service's PATH often lacks the
// sbin directories where distributions put runc.
var searchDirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// New finds the runtime name ("crun", "runc", or a path to a binary) and
// returns a Runtime for it. It does not run the binary; Select does.
func New(name string, opts ...Option) (*Runtime, error) {
	if name == "" {
		return nil, fmt.Errorf("find runtime: %w: empty name", ErrNoRuntime)
	}
	path, err := lookPath(name)
	if err != nil {
		return nil, fmt.Errorf("find runtime %q: %w: %v", name, ErrNoRuntime, err)
	}
	r := &Runtime{Name: filepath.Base(name), Path: path}
	for _, o := range opts {
		o(r)
	}
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

func lookPath(name string) (string, error) {
	if strings.ContainsRune(name, '/') {
		p, err := exec.LookPath(name)
		if err != nil {
			return "", err
		}
		return filepath.Abs(p)
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, d := range searchDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("not in PATH nor in %s", strings.Join(searchDirs, ":"))
}

// call is one invocation of the runtime binary.
type call struct {
	args   []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// RuntimeError is a failed runtime invocation with the runtime's own
// message.
type RuntimeError struct {
	Runtime string   // runtime name
	Args    []string // the subcommand and its arguments
	Msg     string   // the runtime's error message(s)
	Err     error    // the process error, e.g. *exec.ExitError
}

func (e *RuntimeError) Error() string {
	msg := e.Msg
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	// The subcommand and the container id; the whole command line (temp
	// files, bundle paths) says nothing to a user.
	cmd := e.Runtime
	if len(e.Args) > 0 {
		cmd += " " + e.Args[0]
	}
	if len(e.Args) > 1 {
		cmd += " " + e.Args[len(e.Args)-1]
	}
	return fmt.Sprintf("%s: %s", cmd, msg)
}

// StartFailure rewrites a runtime's failure to start a container's process
// as a user reads it: the runtime's reason without its wrapping, and, for a
// command that is not there, which command and what to do.
func StartFailure(err error) string {
	msg, cmd, code := execFailure(err.Error())
	switch code {
	case 127:
		return fmt.Sprintf("command %q is not in the container's images: fix `command` in the playbook or add an image that has it", cmd)
	case 126:
		return fmt.Sprintf("command %q is not executable in the container: check its mode, or fix `command` in the playbook", cmd)
	}
	return msg
}

// execFailure reads a runtime's failure to exec a process: the reason
// without the runtime's wrapping, and, when the command is missing or not
// executable, the command and the shell's exit code for that (127, 126).
func execFailure(msg string) (reason, cmd string, code int) {
	if i := strings.LastIndex(msg, "unable to start container process: "); i >= 0 {
		msg = msg[i+len("unable to start container process: "):]
	}
	if _, err := fmt.Sscanf(msg, "exec: %q:", &cmd); err == nil {
		switch {
		case strings.Contains(msg, "no such file or directory"), strings.Contains(msg, "executable file not found"):
			return msg, cmd, 127
		case strings.Contains(msg, "permission denied"):
			return msg, cmd, 126
		}
	}
	return msg, "", 0
}

func (e *RuntimeError) Unwrap() []error {
	errs := []error{e.Err}
	if notExist(e.Msg) {
		errs = append(errs, ErrNotExist)
	}
	return errs
}

func notExist(msg string) bool {
	return strings.Contains(msg, "does not exist") ||
		(strings.Contains(msg, "error opening file") && strings.Contains(msg, "No such file or directory"))
}

// GlobalArgs returns the global flags every invocation passes before the
// subcommand: --root (when set), and --log/--log-format json to logFile.
func (r *Runtime) GlobalArgs(logFile string) []string {
	var a []string
	if r.Root != "" {
		a = append(a, "--root", r.Root)
	}
	if logFile != "" {
		a = append(a, "--log", logFile, "--log-format", "json")
	}
	return a
}

// run runs the runtime with c. Its stdout, unless c.stdout is set, is
// returned. On failure the error is a *RuntimeError carrying the runtime's
// logged error messages (or its stderr when it logged none).
func (r *Runtime) run(ctx context.Context, c call) ([]byte, error) {
	logf, err := os.CreateTemp("", "berth-oci-*.log")
	if err != nil {
		return nil, fmt.Errorf("%s %s: runtime log: %w", r.Name, c.args[0], err)
	}
	logPath := logf.Name()
	logf.Close()
	defer os.Remove(logPath)

	cmd := exec.CommandContext(ctx, r.Path, append(r.GlobalArgs(logPath), c.args...)...)
	cmd.Stdin = c.stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if c.stdout != nil {
		cmd.Stdout = c.stdout
	}
	if f, ok := c.stderr.(*os.File); ok {
		cmd.Stderr = f // passed to the container as it is, no copying
	} else if c.stderr != nil {
		cmd.Stderr = io.MultiWriter(c.stderr, &errb)
	}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	r.Log.Debug("runtime call", "runtime", r.Name, "args", c.args, "took", time.Since(start), "err", err)
	if err != nil {
		msg := ReadLogErrors(logPath)
		if msg == "" && c.stderr == nil {
			msg = strings.TrimSpace(errb.String())
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return out.Bytes(), &RuntimeError{Runtime: r.Name, Args: c.args, Msg: msg, Err: err}
	}
	return out.Bytes(), nil
}

// ReadLogErrors returns the error-level messages of a runtime's JSON log
// file (runc and crun with --log-format json), joined by "; ". Lines that are
// not JSON are kept as they are. It returns "" when there are none.
func ReadLogErrors(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var msgs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e struct{ Level, Msg string }
		if json.Unmarshal(line, &e) != nil {
			msgs = append(msgs, string(line))
			continue
		}
		if e.Level == "error" || e.Level == "fatal" || e.Level == "panic" {
			msgs = append(msgs, e.Msg)
		}
	}
	return strings.Join(msgs, "; ")
}

// Version returns the first line of the runtime's --version output, e.g.
// "runc version 1.1.5+ds1".
func (r *Runtime) Version(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, r.Path, "--version")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", r.Name, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first), nil
}

// State returns the runtime's state of container id. It returns an error
// wrapping ErrNotExist when the runtime does not know id.
func (r *Runtime) State(ctx context.Context, id string) (*specs.State, error) {
	out, err := r.run(ctx, call{args: []string{"state", id}})
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", id, err)
	}
	var st specs.State
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("state %s: decode %q: %w", id, out, err)
	}
	return &st, nil
}

// Kill sends sig to the container's init, or to every process in it when
// all is set.
func (r *Runtime) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	args = append(args, id, strconv.Itoa(int(sig)))
	if _, err := r.run(ctx, call{args: args}); err != nil {
		return fmt.Errorf("kill %s: %w", id, err)
	}
	return nil
}

// Delete removes the container's runtime state and cgroup. Without force
// the container must be stopped; with force a running one is killed first.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	if _, err := r.run(ctx, call{args: append(args, id)}); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	return nil
}

// Pause freezes every process of the container (cgroup freezer).
func (r *Runtime) Pause(ctx context.Context, id string) error {
	if _, err := r.run(ctx, call{args: []string{"pause", id}}); err != nil {
		return fmt.Errorf("pause %s: %w", id, err)
	}
	return nil
}

// Resume thaws a paused container.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	if _, err := r.run(ctx, call{args: []string{"resume", id}}); err != nil {
		return fmt.Errorf("resume %s: %w", id, err)
	}
	return nil
}

// Exec runs p inside the running container id, without a terminal, and
// waits for it. The caller owns stdin, stdout and stderr (nil: /dev/null);
// they are not closed. It returns the process's exit code (128+n when
// killed by signal n); err is set only when the runtime could not run the
// process at all or ctx ended.
func (r *Runtime) Exec(ctx context.Context, id string, p specs.Process, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	p.Terminal = false
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	b, err := json.Marshal(p)
	if err != nil {
		return -1, fmt.Errorf("exec %s: %w", id, err)
	}
	pf, err := os.CreateTemp("", "berth-exec-*.json")
	if err != nil {
		return -1, fmt.Errorf("exec %s: %w", id, err)
	}
	defer os.Remove(pf.Name())
	if _, err := pf.Write(b); err != nil {
		pf.Close()
		return -1, fmt.Errorf("exec %s: %w", id, err)
	}
	if err := pf.Close(); err != nil {
		return -1, fmt.Errorf("exec %s: %w", id, err)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	// The runtime passes its stdio to the process, so the runtime's own
	// failure is told apart from the process's exit code by its log.
	pidFile := pf.Name() + ".pid"
	defer os.Remove(pidFile)
	_, err = r.run(ctx, call{args: []string{"exec", "--process", pf.Name(), "--pid-file", pidFile, id}, stdin: stdin, stdout: stdout, stderr: stderr})
	if ctx.Err() != nil {
		// Ending the runtime's exec leaves its process running in the
		// container (a health check that hangs would pile up): kill it.
		killPidFile(pidFile)
	}
	if err == nil {
		return 0, nil
	}
	var re *RuntimeError
	var ee *exec.ExitError
	if errors.As(err, &re) && re.Msg == "" && ctx.Err() == nil && errors.As(re.Err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if errors.As(err, &re) {
		// A command that is missing or not executable answers as a shell
		// does: 127 or 126, with the reason on stderr.
		if _, cmd, code := execFailure(re.Msg); code != 0 {
			what := "not found in the container"
			if code == 126 {
				what = "not executable in the container"
			}
			fmt.Fprintf(stderr, "exec: %q: %s\n", cmd, what)
			return code, nil
		}
	}
	return -1, fmt.Errorf("exec %s: %w", id, err)
}

// killPidFile sends SIGKILL to the process whose pid the runtime wrote to
// path, if it wrote one.
func killPidFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Create creates container id from bundle without starting its process;
// the runtime writes the container's init pid to pidFile. stdin, stdout and
// stderr (nil: /dev/null) become the container process's stdio as they are:
// the container keeps them open after Create returns, and the caller still
// owns and closes its own copies.
func (r *Runtime) Create(ctx context.Context, id, bundle, pidFile string, stdin, stdout, stderr *os.File) error {
	return r.withStdio(ctx, []string{"create", "--bundle", bundle, "--pid-file", pidFile, id}, stdin, stdout, stderr)
}

// RunDetached creates and starts container id from bundle in one runtime
// call (`run --detach`), which saves a process start over Create and Start.
// pidFile and the stdio are as for Create.
func (r *Runtime) RunDetached(ctx context.Context, id, bundle, pidFile string, stdin, stdout, stderr *os.File) error {
	return r.withStdio(ctx, []string{"run", "--detach", "--bundle", bundle, "--pid-file", pidFile, id}, stdin, stdout, stderr)
}

// withStdio runs the runtime with args, handing stdin, stdout and stderr
// (nil: /dev/null) to the container process as they are.
func (r *Runtime) withStdio(ctx context.Context, args []string, stdin, stdout, stderr *os.File) error {
	c := call{args: args}
	id := args[len(args)-1]
	// The container keeps its stdio; a pipe to us would hold run() until
	// the container exits, so nil means /dev/null.
	var devnull *os.File
	for _, f := range []*os.File{stdin, stdout, stderr} {
		if f == nil && devnull == nil {
			var err error
			if devnull, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
				return fmt.Errorf("%s %s: %w", args[0], id, err)
			}
			defer devnull.Close()
		}
	}
	or := func(f *os.File) *os.File {
		if f == nil {
			return devnull
		}
		return f
	}
	c.stdin, c.stdout, c.stderr = or(stdin), or(stdout), or(stderr)
	if _, err := r.run(ctx, c); err != nil {
		return fmt.Errorf("%s %s: %w", args[0], id, err)
	}
	return nil
}

// HasState reports whether the runtime keeps state for container id in its
// root directory, without running the runtime. Without a Root it cannot
// tell and answers true.
func (r *Runtime) HasState(id string) bool {
	if r.Root == "" {
		return true
	}
	_, err := os.Lstat(filepath.Join(r.Root, id))
	return err == nil
}

// Start runs the user process of a created container.
func (r *Runtime) Start(ctx context.Context, id string) error {
	if _, err := r.run(ctx, call{args: []string{"start", id}}); err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	return nil
}

// Container is one entry of List.
type Container struct {
	ID      string    `json:"id"`
	Pid     int       `json:"pid"`
	Status  string    `json:"status"`
	Bundle  string    `json:"bundle"`
	Created time.Time `json:"created"`
}

// List returns the containers the runtime knows under its root.
func (r *Runtime) List(ctx context.Context) ([]Container, error) {
	out, err := r.run(ctx, call{args: []string{"list", "--format", "json"}})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var cs []Container
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(out, &cs); err != nil {
		return nil, fmt.Errorf("list: decode: %w", err)
	}
	return cs, nil
}

// Run creates and starts the container of bundle in the foreground and
// waits for it to exit, with stdin from /dev/null and the container's
// output discarded. It returns the container's exit code; err is set when
// the runtime failed to run it. The container is not deleted.
func (r *Runtime) Run(ctx context.Context, id, bundle string) (int, error) {
	_, err := r.run(ctx, call{args: []string{"run", "--bundle", bundle, id}, stdout: io.Discard, stderr: io.Discard})
	if err == nil {
		return 0, nil
	}
	var re *RuntimeError
	var ee *exec.ExitError
	if errors.As(err, &re) && re.Msg == "" && ctx.Err() == nil && errors.As(re.Err, &ee) {
		return ee.ExitCode(), nil
	}
	return -1, fmt.Errorf("run %s: %w", id, err)
}
