package oci

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/fsutil"
)

// DeviceDirPath is where the optional device directory is bind-mounted
// (read-only) inside a container; the container's device socket is
// device.sock in it (canwire.DefaultSocket). A directory rather than the
// socket file itself, so that a berthd restarted after a crash can bind a
// new socket in it that the running container then reaches.
const DeviceDirPath = "/run/berth"

// DefaultPath is the PATH a container gets when its environment sets none.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// SpecVersion is the ociVersion berth writes. berth uses nothing newer than
// runtime-spec 1.0.2, and crun before 1.9 refuses any version but 1.0.x.
const SpecVersion = "1.0.2"

// cpuPeriod is the CFS period used to turn a CPU count into a quota.
const cpuPeriod = 100000

// DefaultCapabilities is the capability set every container process gets in
// its bounding, effective and permitted sets (inheritable and ambient stay
// empty). It is Docker's default set minus NET_RAW (no raw sockets: no
// packet spoofing on the vehicle network), MKNOD (containers get no device
// nodes beyond the defaults) and SYS_CHROOT.
var DefaultCapabilities = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// MaskedPaths are Docker's masked paths: the runtime hides them (bind-mounts
// /dev/null or an empty read-only tmpfs over them).
var MaskedPaths = []string{
	"/proc/asound",
	"/proc/acpi",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
}

// ReadonlyPaths are Docker's read-only paths.
var ReadonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// Mount is a bind mount (a volume) into the container.
type Mount struct {
	Source      string // host path; must be absolute
	Destination string // path in the container; must be absolute
	ReadOnly    bool
}

// Tmpfs is a tmpfs mount in the container.
type Tmpfs struct {
	Destination string // path in the container; must be absolute
	SizeBytes   int64  // 0: the kernel default (half of RAM)
	Mode        uint32 // 0: 01777
}

// SpecOptions is what the caller decides about one container. Zero values
// mean the secure default noted on each field.
type SpecOptions struct {
	// Name is the container's name; it becomes its hostname. Required.
	Name string
	// Rootfs is the absolute host path of the assembled root file system.
	// Required. User names are resolved against its /etc/passwd and
	// /etc/group.
	Rootfs string
	// ReadOnlyRoot mounts the root read-only and adds a writable tmpfs at
	// /tmp.
	ReadOnlyRoot bool

	// Args is the process's argv. Required.
	Args []string
	// Env is the process's environment as KEY=value; PATH defaults to
	// DefaultPath when not set.
	Env []string
	// Cwd is the working directory; "/" when empty.
	Cwd string
	// User is "uid[:gid]", numeric or names resolved in the rootfs; root
	// (0:0) when empty.
	User string

	// NetNSPath joins an existing network namespace (a path such as
	// /run/netns/x). Empty: a new, empty network namespace, unless
	// HostNetwork.
	NetNSPath string
	// HostNetwork shares the host's network namespace. It excludes
	// NetNSPath.
	HostNetwork bool

	// CgroupsPath is passed to the runtime as linux.cgroupsPath.
	CgroupsPath string
	// MemoryBytes limits memory (0: no limit).
	MemoryBytes int64
	// CPUs limits CPU time in CPUs, e.g. 0.5 (0: no limit).
	CPUs float64
	// PidsLimit limits the number of tasks (0: no limit).
	PidsLimit int64

	// Mounts are bind mounts (volumes), in order.
	Mounts []Mount
	// Tmpfs are tmpfs mounts, in order.
	Tmpfs []Tmpfs

	// ResolvConf, Hosts and HostnameFile are optional host files
	// bind-mounted read-only at /etc/resolv.conf, /etc/hosts and
	// /etc/hostname.
	ResolvConf   string
	Hosts        string
	HostnameFile string
	// DeviceDir is an optional host directory holding the container's
	// device socket, bind-mounted read-only at DeviceDirPath.
	DeviceDir string

	// Annotations are copied into the spec.
	Annotations map[string]string
}

// Spec builds the OCI runtime spec berth runs a container with.
//
// Defaults: new pid, mount, ipc and uts namespaces; a network namespace as
// SpecOptions says; a new cgroup namespace when the host uses the unified
// cgroup v2 hierarchy (as Docker does; on v1/hybrid hosts the host's cgroup
// namespace is kept). The process runs with DefaultCapabilities,
// noNewPrivileges, RLIMIT_NOFILE 1024, Docker's MaskedPaths and
// ReadonlyPaths, the standard /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue
// and read-only /sys mounts, and a device cgroup that allows only the
// default devices (null, zero, full, random, urandom, tty, ptmx, pts).
//
// No seccomp profile is set yet: system calls are limited by the capability
// set and noNewPrivileges only.
func Spec(o SpecOptions) (*specs.Spec, error) {
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("spec %q: %w", o.Name, err)
	}
	user, err := ResolveUser(o.Rootfs, o.User)
	if err != nil {
		return nil, fmt.Errorf("spec %q: %w", o.Name, err)
	}
	cwd := o.Cwd
	if cwd == "" {
		cwd = "/"
	}
	caps := append([]string(nil), DefaultCapabilities...)
	s := &specs.Spec{
		Version:  SpecVersion,
		Hostname: o.Name,
		Root:     &specs.Root{Path: o.Rootfs, Readonly: o.ReadOnlyRoot},
		Process: &specs.Process{
			Args: append([]string(nil), o.Args...),
			Env:  withDefaultPath(o.Env),
			Cwd:  cwd,
			User: user,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Mounts:      baseMounts(o),
		Annotations: o.Annotations,
		Linux: &specs.Linux{
			CgroupsPath:   o.CgroupsPath,
			Namespaces:    namespaces(o),
			MaskedPaths:   append([]string(nil), MaskedPaths...),
			ReadonlyPaths: append([]string(nil), ReadonlyPaths...),
			Resources:     resources(o),
		},
	}
	return s, nil
}

func (o SpecOptions) check() error {
	switch {
	case o.Name == "":
		return fmt.Errorf("%w: name is empty", ErrInvalidSpec)
	case !filepath.IsAbs(o.Rootfs):
		return fmt.Errorf("%w: rootfs %q is not an absolute path", ErrInvalidSpec, o.Rootfs)
	case len(o.Args) == 0:
		return fmt.Errorf("%w: no process args", ErrInvalidSpec)
	case o.HostNetwork && o.NetNSPath != "":
		return fmt.Errorf("%w: both host network and network namespace %q given", ErrInvalidSpec, o.NetNSPath)
	case o.MemoryBytes < 0 || o.PidsLimit < 0 || o.CPUs < 0 || math.IsNaN(o.CPUs) || math.IsInf(o.CPUs, 0):
		return fmt.Errorf("%w: negative or invalid resource limit", ErrInvalidSpec)
	}
	if o.Cwd != "" && !filepath.IsAbs(o.Cwd) {
		return fmt.Errorf("%w: working directory %q is not absolute", ErrInvalidSpec, o.Cwd)
	}
	for _, m := range o.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("%w: mount %q -> %q: paths must be absolute", ErrInvalidSpec, m.Source, m.Destination)
		}
	}
	for _, m := range o.Tmpfs {
		if !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("%w: tmpfs %q: path must be absolute", ErrInvalidSpec, m.Destination)
		}
	}
	for _, f := range []string{o.ResolvConf, o.Hosts, o.HostnameFile, o.DeviceDir} {
		if f != "" && !filepath.IsAbs(f) {
			return fmt.Errorf("%w: host file %q is not absolute", ErrInvalidSpec, f)
		}
	}
	return nil
}

func withDefaultPath(env []string) []string {
	out := append([]string(nil), env...)
	for _, e := range env {
		if len(e) >= 5 && e[:5] == "PATH=" {
			return out
		}
	}
	return append(out, DefaultPath)
}

func namespaces(o SpecOptions) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
	}
	switch {
	case o.HostNetwork:
	case o.NetNSPath != "":
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: o.NetNSPath})
	default:
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	if cgroupNSSupported() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns
}

// cgroupNSSupported reports whether a private cgroup namespace is used: the
// kernel has cgroup namespaces and the host runs the unified (v2) hierarchy.
func cgroupNSSupported() bool {
	if _, err := os.Stat("/proc/self/ns/cgroup"); err != nil {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
}

func baseMounts(o SpecOptions) []specs.Mount {
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
	}
	if o.HostNetwork {
		// sysfs cannot be mounted afresh without a network namespace of
		// our own; bind the host's read-only, as Docker does.
		ms = append(ms, specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}})
	} else {
		ms = append(ms, specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}})
	}
	if o.ReadOnlyRoot {
		ms = append(ms, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}})
	}
	for _, m := range o.Mounts {
		opts := []string{"rbind", "nosuid", "nodev"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		ms = append(ms, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	for _, t := range o.Tmpfs {
		mode := t.Mode
		if mode == 0 {
			mode = 0o1777
		}
		opts := []string{"nosuid", "nodev", fmt.Sprintf("mode=%o", mode)}
		if t.SizeBytes > 0 {
			opts = append(opts, fmt.Sprintf("size=%d", t.SizeBytes))
		}
		ms = append(ms, specs.Mount{Destination: t.Destination, Type: "tmpfs", Source: "tmpfs", Options: opts})
	}
	for _, f := range []struct{ src, dst string }{
		{o.ResolvConf, "/etc/resolv.conf"},
		{o.Hosts, "/etc/hosts"},
		{o.HostnameFile, "/etc/hostname"},
		{o.DeviceDir, DeviceDirPath},
	} {
		if f.src == "" {
			continue
		}
		opts := []string{"bind", "ro", "nosuid", "nodev", "noexec"}
		ms = append(ms, specs.Mount{Destination: f.dst, Type: "bind", Source: f.src, Options: opts})
	}
	return ms
}

func resources(o SpecOptions) *specs.LinuxResources {
	r := &specs.LinuxResources{Devices: defaultDeviceRules()}
	if o.MemoryBytes > 0 {
		m := o.MemoryBytes
		r.Memory = &specs.LinuxMemory{Limit: &m}
	}
	if o.CPUs > 0 {
		quota := int64(math.Round(o.CPUs * cpuPeriod))
		if quota < 1000 { // the kernel's minimum CFS quota is 1ms
			quota = 1000
		}
		period := uint64(cpuPeriod)
		r.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	if o.PidsLimit > 0 {
		l := o.PidsLimit
		r.Pids = &specs.LinuxPids{Limit: &l}
	}
	return r
}

// defaultDeviceRules denies every device and allows the default ones.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	i := func(v int64) *int64 { return &v }
	wildcard := int64(-1)
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: i(1), Minor: i(3), Access: "rwm"},        // null
		{Allow: true, Type: "c", Major: i(1), Minor: i(5), Access: "rwm"},        // zero
		{Allow: true, Type: "c", Major: i(1), Minor: i(7), Access: "rwm"},        // full
		{Allow: true, Type: "c", Major: i(1), Minor: i(8), Access: "rwm"},        // random
		{Allow: true, Type: "c", Major: i(1), Minor: i(9), Access: "rwm"},        // urandom
		{Allow: true, Type: "c", Major: i(5), Minor: i(0), Access: "rwm"},        // tty
		{Allow: true, Type: "c", Major: i(5), Minor: i(2), Access: "rwm"},        // ptmx
		{Allow: true, Type: "c", Major: i(136), Minor: &wildcard, Access: "rwm"}, // pts
	}
}

// WriteBundle writes spec as dir/config.json atomically: a temporary file
// is written and synced, then renamed over config.json, and dir is synced.
// dir is created if missing; the rootfs is not touched.
func WriteBundle(dir string, spec *specs.Spec) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	if err := fsutil.ReplaceFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return nil
}
