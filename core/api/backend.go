// Package api owns berthd's control API: the gRPC service that `berth` talks
// to over a unix socket, its .proto, and the translation between the wire
// types and the daemon's Go types. The daemon's behaviour lives behind
// Backend; this package only carries requests and answers.
package api

import (
	"context"
	"io"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Backend is what berthd does for API callers. The gRPC server translates
// each RPC into one call here; errors are mapped to gRPC codes at the edge
// (see the sentinels in errors.go).
//
// A container argument names one container as "stack/name", the way `berth`
// qualifies what the user typed; a Backend may also accept a bare name when
// exactly one stack has a container of that name.
type Backend interface {
	// Plan says what Up would change, without changing anything.
	Plan(ctx context.Context, req ApplyRequest) (*Plan, error)
	// Up applies the playbook and returns once every container is started
	// (and healthy where a dependent asks for it), or on the first failure.
	// progress, when non-nil, is called for each step as it happens.
	Up(ctx context.Context, req ApplyRequest, progress func(Event)) (*Plan, error)
	// Down stops the named stack in reverse dependency order and removes its
	// containers; named persistent volumes are kept.
	Down(ctx context.Context, stack string, progress func(Event)) error
	// Containers lists every container berthd manages (`berth ps`).
	Containers(ctx context.Context) ([]ContainerStatus, error)
	Pause(ctx context.Context, container string) error
	Resume(ctx context.Context, container string) error
	// Logs calls emit for each log line of the container, oldest first. With
	// Follow it then waits for new lines until ctx ends (returning nil) or
	// the container is removed.
	Logs(ctx context.Context, container string, opts LogOptions, emit func(LogLine) error) error
	// Exec runs a process in a running container, copying stdin to it and
	// its output to stdout/stderr, and returns its exit code.
	Exec(ctx context.Context, container string, req ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error)
	Images(ctx context.Context) ([]Image, error)
	// ImportImage takes an OCI archive or a `docker save` archive from path
	// (a file berthd may read and delete) and returns the images it held.
	ImportImage(ctx context.Context, path string) ([]Image, error)
	RemoveImage(ctx context.Context, ref string) error
	Version(ctx context.Context) (VersionInfo, error)
	// Devices lists the board's devices (`berth devices`).
	Devices(ctx context.Context) (Devices, error)
}

// ApplyRequest carries a playbook from the CLI: its file name (for
// diagnostics), its bytes, and -var overrides.
type ApplyRequest struct {
	File   string
	Source []byte
	Vars   map[string]string
}

// Plan lists what an apply changes, one action per container.
type Plan struct {
	Stack   string
	Actions []Action
}

// ActionKind is what happens to one container.
type ActionKind string

const (
	ActionCreate    ActionKind = "create"
	ActionReplace   ActionKind = "replace"
	ActionRemove    ActionKind = "remove"
	ActionUnchanged ActionKind = "unchanged"
)

type Action struct {
	Container string
	Kind      ActionKind
	Reason    string // why, for replace: "images changed", "env changed", ...
}

// Event is one step of Up or Down, for progress output.
type Event struct {
	Time      time.Time
	Container string
	Message   string
}

// ContainerStatus is one row of `berth ps`.
type ContainerStatus struct {
	Stack     string
	Name      string
	Images    []string
	State     string // created, running, paused, restarting, exited, stopped
	Health    string // "", starting, healthy, unhealthy
	PID       int
	StartedAt time.Time
	// FinishedAt is when the container last exited; zero if it never has.
	FinishedAt time.Time
	// Message says why the container is not running or not healthy (its
	// last start error or health check failure); empty when all is well.
	Message  string
	ExitCode int
	Restarts int
	Networks map[string]string // network name -> address
}

type LogOptions struct {
	Follow bool
	Tail   int // last N lines; 0 means all
}

// LogLine is one line a container wrote, with the time the monitor read it.
type LogLine struct {
	Time   time.Time
	Stream string // "stdout" or "stderr"
	Text   string
}

type ExecRequest struct {
	Args []string
	Env  []string
}

// Image is one row of `berth images`.
type Image struct {
	Ref     string
	Digest  string
	Size    int64
	Created time.Time
}

type VersionInfo struct {
	Version string
	Runtime string // the OCI runtime berthd chose, e.g. "runc 1.1.5"
}

// Devices is the board berthd runs and its devices.
type Devices struct {
	// Board is the board's name; empty when berthd runs without a board
	// file (--board), and then Devices is empty too.
	Board   string
	Devices []Device
}

// Device is one board device: its plugin's view and the broker's.
type Device struct {
	Name, Class, Plugin string
	// ID is the device's ID in its plugin ("vcan0").
	ID string
	// Available is whether its plugin runs; Health is "healthy",
	// "unhealthy" or "unknown", with Reason when not healthy.
	Available      bool
	Health, Reason string
	// Restarts counts the plugin's restarts after a crash.
	Restarts   int
	Attributes map[string]string
	// Counters are the plugin's counters (rx_frames, tx_frames, errors,
	// drops for CAN).
	Counters map[string]uint64
	// Sessions are the containers' open sessions on the device.
	Sessions []DeviceSession
}

// DeviceSession is one container grant's sessions on a device, with their
// traffic summed since berthd started: Received frames its filter
// selected, Delivered to the container, Dropped because it read too
// slowly; Sent, Refused by the grant, and RateLimited. Open is how many
// of its sessions are open now.
type DeviceSession struct {
	Container, Grant             string
	Open                         int
	Received, Delivered, Dropped uint64
	Sent, Refused, RateLimited   uint64
}

// DiagnosticsError carries playbook problems across the API so the CLI can
// print them against its own copy of the file.
type DiagnosticsError struct {
	Diags hcl.Diagnostics
}

func (e *DiagnosticsError) Error() string { return e.Diags.Error() }
