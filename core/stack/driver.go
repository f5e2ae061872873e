package stack

import (
	"context"
	"io"
	"strconv"
	"syscall"
	"time"

	"github.com/berth-io/berth/core/image"
	"github.com/berth-io/berth/core/playbook"
)

// Spec is one container as the reconciler hands it to a Driver: the
// playbook's container, the stack around it, and its images resolved to
// digests, bottom to top.
type Spec struct {
	Stack     *playbook.Stack
	Container *playbook.Container
	Images    []image.Image
	// Digest identifies everything that needs a new container when it
	// changes (see digest.go); Parts says which part changed.
	Digest string
	Parts  map[string]string
}

// ID is the container's identity on this host: unique per berthd, stable
// across berthd restarts, and valid as an OCI runtime container ID.
func (s *Spec) ID() string { return ContainerID(s.Stack.Name, s.Container.Name) }

// ContainerID joins a stack and a container name with "+", a character that
// playbook names cannot contain, so no two pairs share an ID.
func ContainerID(stack, container string) string { return stack + "+" + container }

// Driver does the work on one container; the reconciler decides when.
// Every method may be called again after a failure or a berthd restart and
// must then finish or undo what an earlier call left.
type Driver interface {
	// PrepareStack makes what the stack's containers share: networks and
	// volumes. Safe to call for a stack that is already prepared.
	PrepareStack(ctx context.Context, st *playbook.Stack) error
	// Prepare makes what outlives a container's restarts: its root file
	// system, network namespace and addresses, and its bundle.
	Prepare(ctx context.Context, s *Spec) error
	// Connect rewrites /etc/hosts of the given containers of one stack so
	// each names the others it shares a network with. It is called after
	// Prepare of every new container and before any of them starts.
	Connect(ctx context.Context, specs []*Spec) error
	// Start starts the prepared container and returns once its process runs.
	Start(ctx context.Context, s *Spec) (Task, error)
	// Adopt finds the container an earlier berthd started, running or
	// exited; it returns an error wrapping ErrNotFound when there is none.
	Adopt(ctx context.Context, s *Spec) (Task, error)
	// Remove deletes everything Prepare made. The container must not run.
	Remove(ctx context.Context, s *Spec) error
	// RemoveStack deletes what PrepareStack made, except persistent volumes.
	RemoveStack(ctx context.Context, st *playbook.Stack) error
	// Logs reads the container's log; see api.Backend.Logs.
	Logs(ctx context.Context, s *Spec, tail int, follow bool, emit func(LogLine) error) error
}

// Task is one run of a container's process.
type Task interface {
	Pid() int
	// StartedAt is when the process started (for an adopted one, before
	// this berthd knew it).
	StartedAt() time.Time
	// Wait blocks until the process has exited, or ctx ends (ctx.Err()).
	Wait(ctx context.Context) (Exit, error)
	// Kill sends sig to every process of the container.
	Kill(ctx context.Context, sig syscall.Signal) error
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	// Exec runs args in the container with its env, user and working dir.
	Exec(ctx context.Context, args, env []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
	// Delete removes the exited process's runtime state; idempotent.
	Delete(ctx context.Context) error
}

// Exit is how a container's process ended.
type Exit struct {
	Code   int
	Signal string // the signal's name when it was killed by one
	At     time.Time
}

// Failed reports whether the exit counts as a failure for `on-failure`.
func (e Exit) Failed() bool { return e.Code != 0 || e.Signal != "" }

func (e Exit) String() string {
	if e.Signal != "" {
		return "killed by " + e.Signal
	}
	return "exit code " + strconv.Itoa(e.Code)
}

// LogLine is one line a container wrote.
type LogLine struct {
	Time   time.Time
	Stream string
	Text   string
}
