package oci

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func testRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\n# comment\napp:x:1000:1000::/home/app:/bin/sh\nsvc:x:1001:1001::/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\napp:x:1000:\nsvc:x:1001:\ncan:x:2000:app,svc\ni2c:x:2001:app\n"), 0o644)
	return root
}

func TestSpecDefaults(t *testing.T) {
	root := testRootfs(t)
	s, err := Spec(SpecOptions{Name: "nav", Rootfs: root, Args: []string{"/bin/nav"}, CgroupsPath: "/berth/nav"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != SpecVersion || s.Hostname != "nav" || s.Root.Path != root || s.Root.Readonly {
		t.Errorf("version/hostname/root = %q %q %+v", s.Version, s.Hostname, s.Root)
	}
	p := s.Process
	if !p.NoNewPrivileges {
		t.Error("noNewPrivileges not set")
	}
	for _, set := range [][]string{p.Capabilities.Bounding, p.Capabilities.Effective, p.Capabilities.Permitted} {
		if !slices.Equal(set, DefaultCapabilities) {
			t.Errorf("capability set = %v", set)
		}
	}
	if len(p.Capabilities.Inheritable)+len(p.Capabilities.Ambient) != 0 {
		t.Errorf("inheritable/ambient caps = %v %v", p.Capabilities.Inheritable, p.Capabilities.Ambient)
	}
	for _, bad := range []string{"CAP_NET_RAW", "CAP_MKNOD", "CAP_SYS_ADMIN"} {
		if slices.Contains(p.Capabilities.Bounding, bad) {
			t.Errorf("%s granted", bad)
		}
	}
	if len(p.Rlimits) != 1 || p.Rlimits[0] != (specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}) {
		t.Errorf("rlimits = %+v", p.Rlimits)
	}
	if p.Cwd != "/" || !slices.Contains(p.Env, DefaultPath) || p.User.UID != 0 {
		t.Errorf("cwd/env/user = %q %v %+v", p.Cwd, p.Env, p.User)
	}
	var nss []specs.LinuxNamespaceType
	for _, ns := range s.Linux.Namespaces {
		nss = append(nss, ns.Type)
		if ns.Path != "" {
			t.Errorf("namespace %s joins %q", ns.Type, ns.Path)
		}
	}
	for _, want := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace} {
		if !slices.Contains(nss, want) {
			t.Errorf("namespace %s missing from %v", want, nss)
		}
	}
	if slices.Contains(nss, specs.UserNamespace) {
		t.Error("user namespace requested")
	}
	if slices.Contains(nss, specs.CgroupNamespace) != cgroupNSSupported() {
		t.Errorf("cgroup namespace = %v, host supports %v", slices.Contains(nss, specs.CgroupNamespace), cgroupNSSupported())
	}
	for _, m := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware", "/proc/scsi", "/proc/acpi"} {
		if !slices.Contains(s.Linux.MaskedPaths, m) {
			t.Errorf("%s not masked", m)
		}
	}
	if !slices.Equal(s.Linux.ReadonlyPaths, []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}) {
		t.Errorf("readonly paths = %v", s.Linux.ReadonlyPaths)
	}
	mounts := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		mounts[m.Destination] = m
	}
	for dst, typ := range map[string]string{"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs", "/dev/mqueue": "mqueue", "/sys": "sysfs"} {
		if mounts[dst].Type != typ {
			t.Errorf("mount %s = %+v, want type %s", dst, mounts[dst], typ)
		}
	}
	if !slices.Contains(mounts["/sys"].Options, "ro") {
		t.Error("/sys is not read-only")
	}
	if _, ok := mounts["/tmp"]; ok {
		t.Error("/tmp tmpfs without a read-only root")
	}
	if len(s.Linux.Devices) != 0 {
		t.Errorf("host devices = %v", s.Linux.Devices)
	}
	if d := s.Linux.Resources.Devices; len(d) == 0 || d[0].Allow || d[0].Access != "rwm" {
		t.Errorf("device cgroup does not start with deny-all: %+v", d)
	}
	if r := s.Linux.Resources; r.Memory != nil || r.CPU != nil || r.Pids != nil {
		t.Errorf("limits set without options: %+v", r)
	}
	if s.Linux.CgroupsPath != "/berth/nav" || s.Linux.Seccomp != nil {
		t.Errorf("cgroupsPath %q, seccomp %v", s.Linux.CgroupsPath, s.Linux.Seccomp)
	}
}

func TestSpecOptions(t *testing.T) {
	root := testRootfs(t)
	base := SpecOptions{Name: "c", Rootfs: root, Args: []string{"/app"}}
	mountOf := func(s *specs.Spec, dst string) *specs.Mount {
		for i := range s.Mounts {
			if s.Mounts[i].Destination == dst {
				return &s.Mounts[i]
			}
		}
		return nil
	}
	nsOf := func(s *specs.Spec, typ specs.LinuxNamespaceType) *specs.LinuxNamespace {
		for i := range s.Linux.Namespaces {
			if s.Linux.Namespaces[i].Type == typ {
				return &s.Linux.Namespaces[i]
			}
		}
		return nil
	}
	tests := []struct {
		name  string
		edit  func(*SpecOptions)
		check func(*testing.T, *specs.Spec)
	}{
		{"read-only root has writable /tmp", func(o *SpecOptions) { o.ReadOnlyRoot = true }, func(t *testing.T, s *specs.Spec) {
			m := mountOf(s, "/tmp")
			if !s.Root.Readonly || m == nil || m.Type != "tmpfs" || slices.Contains(m.Options, "ro") {
				t.Errorf("root %+v, /tmp %+v", s.Root, m)
			}
		}},
		{"resources", func(o *SpecOptions) { o.MemoryBytes = 64 << 20; o.CPUs = 1.5; o.PidsLimit = 50 }, func(t *testing.T, s *specs.Spec) {
			r := s.Linux.Resources
			if *r.Memory.Limit != 64<<20 || *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 || *r.Pids.Limit != 50 {
				t.Errorf("resources = mem %d quota %d period %d pids %d", *r.Memory.Limit, *r.CPU.Quota, *r.CPU.Period, *r.Pids.Limit)
			}
		}},
		{"network namespace path", func(o *SpecOptions) { o.NetNSPath = "/run/netns/x" }, func(t *testing.T, s *specs.Spec) {
			if ns := nsOf(s, specs.NetworkNamespace); ns == nil || ns.Path != "/run/netns/x" {
				t.Errorf("net ns = %+v", ns)
			}
		}},
		{"host network", func(o *SpecOptions) { o.HostNetwork = true }, func(t *testing.T, s *specs.Spec) {
			if ns := nsOf(s, specs.NetworkNamespace); ns != nil {
				t.Errorf("net ns = %+v", ns)
			}
			if m := mountOf(s, "/sys"); m.Type != "bind" || !slices.Contains(m.Options, "ro") {
				t.Errorf("/sys = %+v", m)
			}
		}},
		{"volumes, tmpfs, files, device socket", func(o *SpecOptions) {
			o.Mounts = []Mount{{Source: "/var/lib/berth/v/db", Destination: "/data"}, {Source: "/etc/ssl", Destination: "/etc/ssl", ReadOnly: true}}
			o.Tmpfs = []Tmpfs{{Destination: "/run", SizeBytes: 1 << 20, Mode: 0o755}}
			o.ResolvConf, o.Hosts, o.HostnameFile = "/r/resolv.conf", "/r/hosts", "/r/hostname"
			o.DeviceDir = "/run/berth/devices/s/c"
		}, func(t *testing.T, s *specs.Spec) {
			if m := mountOf(s, "/data"); m == nil || m.Source != "/var/lib/berth/v/db" || !slices.Contains(m.Options, "rw") {
				t.Errorf("/data = %+v", m)
			}
			if m := mountOf(s, "/etc/ssl"); m == nil || !slices.Contains(m.Options, "ro") {
				t.Errorf("/etc/ssl = %+v", m)
			}
			if m := mountOf(s, "/run"); m == nil || !slices.Contains(m.Options, "size=1048576") || !slices.Contains(m.Options, "mode=755") {
				t.Errorf("/run = %+v", m)
			}
			for dst, src := range map[string]string{"/etc/resolv.conf": "/r/resolv.conf", "/etc/hosts": "/r/hosts", "/etc/hostname": "/r/hostname", DeviceDirPath: "/run/berth/devices/s/c"} {
				if m := mountOf(s, dst); m == nil || m.Source != src || m.Type != "bind" {
					t.Errorf("%s = %+v", dst, m)
				}
			}
		}},
		{"user by name", func(o *SpecOptions) { o.User = "app" }, func(t *testing.T, s *specs.Spec) {
			if u := s.Process.User; u.UID != 1000 || u.GID != 1000 || !slices.Equal(u.AdditionalGids, []uint32{2000, 2001}) {
				t.Errorf("user = %+v", u)
			}
		}},
		{"env keeps PATH", func(o *SpecOptions) { o.Env = []string{"PATH=/opt/bin", "A=b"}; o.Cwd = "/srv" }, func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Process.Env, []string{"PATH=/opt/bin", "A=b"}) || s.Process.Cwd != "/srv" {
				t.Errorf("env %v cwd %q", s.Process.Env, s.Process.Cwd)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.edit(&o)
			s, err := Spec(o)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestSpecRejects(t *testing.T) {
	root := testRootfs(t)
	for name, o := range map[string]SpecOptions{
		"no name":          {Rootfs: root, Args: []string{"/a"}},
		"relative rootfs":  {Name: "c", Rootfs: "rootfs", Args: []string{"/a"}},
		"no args":          {Name: "c", Rootfs: root},
		"host and netns":   {Name: "c", Rootfs: root, Args: []string{"/a"}, HostNetwork: true, NetNSPath: "/run/netns/x"},
		"negative memory":  {Name: "c", Rootfs: root, Args: []string{"/a"}, MemoryBytes: -1},
		"relative volume":  {Name: "c", Rootfs: root, Args: []string{"/a"}, Mounts: []Mount{{Source: "data", Destination: "/data"}}},
		"relative cwd":     {Name: "c", Rootfs: root, Args: []string{"/a"}, Cwd: "srv"},
		"unknown user":     {Name: "c", Rootfs: root, Args: []string{"/a"}, User: "nobody"},
		"unknown group":    {Name: "c", Rootfs: root, Args: []string{"/a"}, User: "app:wheel"},
		"empty group part": {Name: "c", Rootfs: root, Args: []string{"/a"}, User: "app:"},
	} {
		if _, err := Spec(o); err == nil {
			t.Errorf("%s: no error", name)
		} else if !errors.Is(err, ErrInvalidSpec) && !errors.Is(err, ErrUnknownUser) {
			t.Errorf("%s: error %v wraps no sentinel", name, err)
		}
	}
}

func TestResolveUser(t *testing.T) {
	root := testRootfs(t)
	tests := []struct {
		in   string
		want specs.User
	}{
		{"", specs.User{}},
		{"0", specs.User{}},
		{"1000", specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{2000, 2001}}},
		{"4242", specs.User{UID: 4242}},
		{"4242:7", specs.User{UID: 4242, GID: 7}},
		{"svc", specs.User{UID: 1001, GID: 1001, AdditionalGids: []uint32{2000}}},
		{"svc:can", specs.User{UID: 1001, GID: 2000}},
		{"1001:i2c", specs.User{UID: 1001, GID: 2001, AdditionalGids: []uint32{2000}}},
	}
	for _, tt := range tests {
		got, err := ResolveUser(root, tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if got.UID != tt.want.UID || got.GID != tt.want.GID || !slices.Equal(got.AdditionalGids, tt.want.AdditionalGids) {
			t.Errorf("%q = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestWriteBundle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "b")
	s, err := Spec(SpecOptions{Name: "c", Rootfs: testRootfs(t), Args: []string{"/a"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteBundle(dir, s); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back specs.Spec
	if err := json.Unmarshal(b, &back); err != nil || back.Hostname != "c" {
		t.Fatalf("config.json round trip: %v %q", err, back.Hostname)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("bundle dir holds %d entries, want only config.json", len(ents))
	}
}
