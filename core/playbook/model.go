package playbook

import (
	"net/netip"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/berth-io/berth/core/broker"
)

// Playbook is one decoded, checked playbook file. It is plain data: it holds
// no open resources and is safe to share between goroutines once built.
type Playbook struct {
	// File is the path the playbook was read from, as given.
	File string
	// Source is the file's bytes as read; a generation keeps it so a
	// rollback can show and re-apply the exact text.
	Source []byte
	Stack  *Stack
}

// Stack is the `stack "<name>"` block: the containers, volumes and networks
// that run together and are updated together.
type Stack struct {
	Name       string
	Containers []*Container // in file order
	Volumes    []*Volume    // in file order
	Networks   []*Network   // in file order
	DeclRange  hcl.Range
}

// Container returns the container with the given name, or nil.
func (s *Stack) Container(name string) *Container {
	for _, c := range s.Containers {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// VolumeType says where a named volume's data lives.
type VolumeType string

const (
	// VolumePersistent data lives on disk in berthd's state dir and outlives
	// containers, `berth down` and updates.
	VolumePersistent VolumeType = "persistent"
	// VolumeTmpfs data lives in memory and is lost when the stack goes down.
	VolumeTmpfs VolumeType = "tmpfs"
)

// Volume is a stack-level `volume "<name>"` block.
type Volume struct {
	Name      string
	Type      VolumeType
	Size      int64 // bytes; 0 means no limit (tmpfs only)
	DeclRange hcl.Range
}

// Network is a stack-level `network "<name>"` block: a private bridge on
// which the containers that join it reach each other by container name.
type Network struct {
	Name      string
	Subnet    netip.Prefix // zero when the playbook leaves it to berth
	DeclRange hcl.Range
}

// NetworkMode is how a container is connected.
type NetworkMode string

const (
	NetworkNone   NetworkMode = "none"   // loopback only (the default)
	NetworkHost   NetworkMode = "host"   // the host's network namespace
	NetworkBridge NetworkMode = "bridge" // the stack networks named in Networks
)

// Container is a `container "<name>"` block.
type Container struct {
	Name string
	// Images are image references, bottom to top; their layers are stacked
	// in this order into one root file system.
	Images []ImageRef
	// Command replaces the top image's entrypoint when non-nil.
	Command []string
	// Args replaces the top image's cmd when non-nil.
	Args       []string
	Env        map[string]string
	WorkingDir string
	User       string
	// ReadOnly makes the root file system read-only (the default); /tmp is
	// then a writable tmpfs.
	ReadOnly    bool
	Mounts      []Mount
	Resources   Resources
	Restart     Restart
	DependsOn   []Dependency
	Health      *Health // nil when the container has no health check
	Stop        Stop
	NetworkMode NetworkMode
	Networks    []string // stack network names, when NetworkMode is bridge
	// Grants are the device grant blocks (can, i2c, spi, gps, modem).
	Grants    []Grant
	DeclRange hcl.Range
}

// ImageRef is one entry of a container's images list, with where it was written.
type ImageRef struct {
	Ref   string
	Range hcl.Range
}

// Mount is a container-level `volume "<name>"` block: the stack volume Name
// mounted at Path.
type Mount struct {
	Volume    string
	Path      string
	ReadOnly  bool
	DeclRange hcl.Range
}

// Resources are cgroup limits; a zero field means no limit.
type Resources struct {
	Memory int64   // bytes
	CPU    float64 // CPUs, e.g. 0.5
	PIDs   int64
}

// RestartPolicy says when a container that exited is started again.
type RestartPolicy string

const (
	RestartAlways    RestartPolicy = "always"
	RestartOnFailure RestartPolicy = "on-failure"
	RestartNever     RestartPolicy = "never"
)

// Restart is a container's `restart` block. The n-th consecutive restart
// waits min(Delay * 2^(n-1), MaxDelay).
type Restart struct {
	Policy   RestartPolicy
	Attempts int // consecutive restarts before giving up; 0 means no limit
	Delay    time.Duration
	MaxDelay time.Duration
}

// Condition is what a dependency must reach before its dependent starts.
type Condition string

const (
	ConditionStarted Condition = "started"
	ConditionHealthy Condition = "healthy"
)

// Dependency is a `depends_on "<container>"` block.
type Dependency struct {
	Container string
	Condition Condition
	DeclRange hcl.Range
}

// Health is a container's `health` block: Exec is run inside the container
// every Interval; Retries consecutive failures make it unhealthy. Failures
// during StartPeriod do not count.
type Health struct {
	Exec        []string
	Interval    time.Duration
	Timeout     time.Duration
	Retries     int
	StartPeriod time.Duration
}

// Stop is a container's `stop` block: Signal is sent first, SIGKILL after Timeout.
type Stop struct {
	Signal  syscall.Signal
	Timeout time.Duration
}

// Grant is a device grant block (`can`, `i2c`, `spi`, `gps`, `modem`).
// Only `can` is supported: the decoder refuses the other classes.
type Grant struct {
	Class string // "can", "i2c", ...
	// Name is the block label; it is unique among the container's grants.
	Name string
	// CAN is the decoded `can` grant, with Name and Device set; nil for
	// the other classes. Its bus is checked against a board by CheckBoard.
	CAN *broker.Grant
	// Native asks for the grant to be served as a SocketCAN interface
	// named after the grant inside the container; berthd decides whether
	// the kernel and the grant allow it.
	Native bool
	// BusRange is where the bus attribute is written (the block header
	// when it is not), for diagnostics about the board device.
	BusRange  hcl.Range
	DeclRange hcl.Range
}
