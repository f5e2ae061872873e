package hil

import (
	"archive/tar"
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
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// KernelMetapackage is the Debian package whose one dependency names the
// current versioned kernel package.
const KernelMetapackage = "linux-image-amd64"

// DefaultModules are the modules the HIL guest loads: SocketCAN with its
// virtual devices and gateway, the I2C character device and stub chip, and
// what containers and berthd need (overlayfs, veth, a bridge, and the
// netlink families a netlink handle opens besides NETLINK_ROUTE: xfrm and
// netfilter).
func DefaultModules() []string {
	return []string{
		"can", "can_raw", "can_dev", "can_gw", "vcan", "vxcan",
		"i2c_dev", "i2c_stub", "overlay", "veth", "bridge",
		"xfrm_user", "nfnetlink",
	}
}

// Kernel is a kernel image and a set of its modules unpacked in a cache
// directory. It is written by FetchKernel and read-only afterwards.
type Kernel struct {
	// Package and Version name the Debian package it came from
	// ("linux-image-6.1.0-56-amd64", "6.1.192-2").
	Package string `json:"package"`
	Version string `json:"version"`
	// Release is the kernel release, as uname -r prints it in the guest.
	Release string `json:"release"`
	// Wanted are the modules asked for; Modules is their closure in load order.
	Wanted  []string `json:"wanted"`
	Modules []Module `json:"modules"`
	// Dir is the cache directory holding vmlinuz and modules/NAME.ko.
	Dir string `json:"-"`
}

// Vmlinuz returns the path of the kernel image.
func (k *Kernel) Vmlinuz() string { return filepath.Join(k.Dir, "vmlinuz") }

// ModuleFile returns the path of the uncompressed module m.
func (k *Kernel) ModuleFile(m Module) string {
	return filepath.Join(k.Dir, "modules", m.Name+".ko")
}

const manifestName = "kernel.json"

// FetchKernel returns the current Debian stock kernel with the modules
// wanted (and their dependencies), from cacheRoot/PACKAGE_VERSION when it is
// there, else by downloading that one package with apt-get and unpacking
// only vmlinuz and those modules. Apt's package lists are refreshed with
// apt-get update only when they do not name the package or the download
// fails. When apt cannot be asked at all, the newest cached kernel with the
// wanted modules is used. Concurrent callers serialise on a lock file in
// cacheRoot. log may be nil.
func FetchKernel(ctx context.Context, cacheRoot string, wanted []string, log *slog.Logger) (*Kernel, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cacheRoot, 0o755); err != nil {
		return nil, fmt.Errorf("fetch kernel: %w", err)
	}
	unlock, err := lockDir(cacheRoot)
	if err != nil {
		return nil, fmt.Errorf("fetch kernel: %w", err)
	}
	defer unlock()

	if k := unchangedSinceLastResolve(cacheRoot, wanted); k != nil {
		return k, nil
	}
	pkg, version, err := resolveKernel(ctx, log)
	if err != nil {
		if k := newestCached(cacheRoot, wanted); k != nil {
			log.Warn("cannot ask apt for the current kernel; using the cached one", "kernel", k.Package, "version", k.Version, "err", err)
			return k, nil
		}
		return nil, fmt.Errorf("fetch kernel: %w", err)
	}
	dir := filepath.Join(cacheRoot, pkg+"_"+version)
	if k, err := loadKernel(dir); err == nil && slices.Equal(k.Wanted, wanted) {
		rememberResolve(cacheRoot, k)
		return k, nil
	}
	log.Info("fetching kernel for the HIL VM (first use)", "package", pkg, "version", version, "cache", dir)

	tmp, err := os.MkdirTemp(cacheRoot, ".fetch-")
	if err != nil {
		return nil, fmt.Errorf("fetch kernel: %w", err)
	}
	defer os.RemoveAll(tmp)
	deb, err := download(ctx, tmp, pkg, version)
	if err != nil {
		return nil, fmt.Errorf("fetch kernel: %w", err)
	}
	k, err := unpack(ctx, deb, filepath.Join(tmp, "kernel"), wanted)
	if err != nil {
		return nil, fmt.Errorf("fetch kernel %s: %w", pkg, err)
	}
	k.Package, k.Version = pkg, version
	if err := writeManifest(k); err != nil {
		return nil, fmt.Errorf("fetch kernel: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("fetch kernel: %w", err)
	}
	if err := os.Rename(k.Dir, dir); err != nil {
		return nil, fmt.Errorf("fetch kernel: %w", err)
	}
	k.Dir = dir
	rememberResolve(cacheRoot, k)
	return k, nil
}

// aptLists is the directory apt-get update rewrites; its modification time
// changes whenever the package lists do.
const aptLists = "/var/lib/apt/lists"

// resolvedName is the file in the cache root that records which kernel apt
// named last, and the state of apt's lists at that time.
const resolvedName = "resolved.json"

type resolved struct {
	ListsModTime int64  `json:"lists_mod_time"`
	Dir          string `json:"dir"`
}

// unchangedSinceLastResolve returns the kernel apt named last time if apt's
// package lists have not changed since (asking apt-cache costs about a
// second per run), or nil.
func unchangedSinceLastResolve(cacheRoot string, wanted []string) *Kernel {
	st, err := os.Stat(aptLists)
	if err != nil {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(cacheRoot, resolvedName))
	if err != nil {
		return nil
	}
	var r resolved
	if json.Unmarshal(data, &r) != nil || r.ListsModTime != st.ModTime().UnixNano() {
		return nil
	}
	k, err := loadKernel(filepath.Join(cacheRoot, filepath.Base(r.Dir)))
	if err != nil || !slices.Equal(k.Wanted, wanted) {
		return nil
	}
	return k
}

// rememberResolve records k as the kernel apt names with its current lists.
// A failure only costs the next run an apt-cache query.
func rememberResolve(cacheRoot string, k *Kernel) {
	st, err := os.Stat(aptLists)
	if err != nil {
		return
	}
	data, err := json.Marshal(resolved{ListsModTime: st.ModTime().UnixNano(), Dir: filepath.Base(k.Dir)})
	if err != nil {
		return
	}
	_ = os.WriteFile(filepath.Join(cacheRoot, resolvedName), data, 0o644)
}

// lockDir takes an exclusive flock on dir/.lock and returns its release.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// resolveKernel asks apt for the versioned package linux-image-amd64 depends
// on and its candidate version, refreshing the package lists once if needed.
func resolveKernel(ctx context.Context, log *slog.Logger) (pkg, version string, err error) {
	pkg, version, err = queryKernel(ctx)
	if err == nil {
		return pkg, version, nil
	}
	log.Info("apt does not name the kernel package; running apt-get update", "err", err)
	if _, uerr := command(ctx, "", "apt-get", "update", "-qq"); uerr != nil {
		return "", "", errors.Join(err, uerr)
	}
	return queryKernel(ctx)
}

func queryKernel(ctx context.Context) (pkg, version string, err error) {
	out, err := command(ctx, "", "apt-cache", "depends", KernelMetapackage)
	if err != nil {
		return "", "", err
	}
	pkg, err = parseDepends(out)
	if err != nil {
		return "", "", err
	}
	out, err = command(ctx, "", "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return "", "", err
	}
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(line, "Version:"); ok {
			return pkg, strings.TrimSpace(v), nil
		}
	}
	return "", "", fmt.Errorf("apt-cache show %s: no Version field", pkg)
}

// parseDepends returns the one versioned kernel package in the output of
// `apt-cache depends linux-image-amd64`.
func parseDepends(out []byte) (string, error) {
	var pkgs []string
	for line := range strings.Lines(string(out)) {
		dep, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends:")
		dep = strings.TrimSpace(dep)
		if ok && strings.HasPrefix(dep, "linux-image-") && !strings.HasPrefix(dep, "<") {
			pkgs = append(pkgs, dep)
		}
	}
	if len(pkgs) != 1 {
		return "", fmt.Errorf("%w: apt-cache depends %s names %d (%s)",
			ErrNoKernelPackage, KernelMetapackage, len(pkgs), strings.Join(pkgs, ", "))
	}
	return pkgs[0], nil
}

// download fetches exactly pkg=version into dir and returns the .deb path.
// A failed download (a stale package list) is retried once after apt-get update.
func download(ctx context.Context, dir, pkg, version string) (string, error) {
	spec := pkg + "=" + version
	if _, err := command(ctx, dir, "apt-get", "download", "-qq", spec); err != nil {
		if _, uerr := command(ctx, "", "apt-get", "update", "-qq"); uerr != nil {
			return "", errors.Join(err, uerr)
		}
		if _, err := command(ctx, dir, "apt-get", "download", "-qq", spec); err != nil {
			return "", err
		}
	}
	debs, err := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if err != nil || len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s: expected one .deb in %s, found %d", spec, dir, len(debs))
	}
	return debs[0], nil
}

var modulePath = regexp.MustCompile(`^(?:usr/)?lib/modules/([^/]+)/kernel/.*\.ko(?:\.xz)?$`)

// unpack reads the deb's data archive twice: once to index every module's
// dependencies and copy vmlinuz, once to copy the modules wanted needs.
func unpack(ctx context.Context, deb, dir string, wanted []string) (*Kernel, error) {
	if err := os.MkdirAll(filepath.Join(dir, "modules"), 0o755); err != nil {
		return nil, err
	}
	k := &Kernel{Dir: dir, Wanted: wanted}
	index := map[string]Module{}
	haveImage := false
	err := walkDeb(ctx, deb, func(name string, r io.Reader) error {
		switch {
		case strings.HasPrefix(name, "boot/vmlinuz-"):
			haveImage = true
			return writeFile(k.Vmlinuz(), r)
		case modulePath.MatchString(name):
			k.Release = modulePath.FindStringSubmatch(name)[1]
			data, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			m, err := ParseModule(name, data)
			if err != nil {
				return err
			}
			index[m.Name] = m
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveImage {
		return nil, fmt.Errorf("no boot/vmlinuz-* in %s", filepath.Base(deb))
	}
	k.Modules, err = LoadOrder(index, wanted)
	if err != nil {
		return nil, err
	}
	need := map[string]Module{}
	for _, m := range k.Modules {
		need[m.Path] = m
	}
	err = walkDeb(ctx, deb, func(name string, r io.Reader) error {
		m, ok := need[name]
		if !ok {
			return nil
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		obj, err := ModuleObject(name, data)
		if err != nil {
			return err
		}
		delete(need, name)
		return writeFile(k.ModuleFile(m), bytes.NewReader(obj))
	})
	if err != nil {
		return nil, err
	}
	if len(need) > 0 {
		return nil, fmt.Errorf("modules vanished between passes: %v", need)
	}
	return k, nil
}

// walkDeb calls fn for each regular file in the deb's data archive, with
// its path relative to the root ("boot/vmlinuz-6.1.0-56-amd64").
func walkDeb(ctx context.Context, deb string, fn func(name string, r io.Reader) error) error {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dpkg-deb: %w", err)
	}
	werr := func() error {
		tr := tar.NewReader(bufio.NewReaderSize(out, 1<<20))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if h.Typeflag != tar.TypeReg {
				continue
			}
			if err := fn(strings.TrimPrefix(h.Name, "./"), tr); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		}
	}()
	if werr != nil {
		_ = cmd.Process.Kill()
	}
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil && werr == nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", deb, err, strings.TrimSpace(stderr.String()))
	}
	return werr
}

func writeFile(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeManifest(k *Kernel) error {
	data, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(k.Dir, manifestName), data, 0o644)
}

// loadKernel reads a cached kernel; it fails unless the directory is complete.
func loadKernel(dir string) (*Kernel, error) {
	data, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, err
	}
	k := &Kernel{Dir: dir}
	if err := json.Unmarshal(data, k); err != nil {
		return nil, fmt.Errorf("%s: %w", manifestName, err)
	}
	return k, nil
}

// newestCached returns the most recently fetched cached kernel whose module
// set is wanted, or nil.
func newestCached(cacheRoot string, wanted []string) *Kernel {
	entries, err := os.ReadDir(cacheRoot)
	if err != nil {
		return nil
	}
	var best *Kernel
	var bestTime int64
	for _, e := range entries {
		dir := filepath.Join(cacheRoot, e.Name())
		k, err := loadKernel(dir)
		if err != nil || !slices.Equal(k.Wanted, wanted) {
			continue
		}
		st, err := os.Stat(filepath.Join(dir, manifestName))
		if err == nil && st.ModTime().UnixNano() > bestTime {
			best, bestTime = k, st.ModTime().UnixNano()
		}
	}
	return best
}

// command runs name with args in dir and returns its standard output; the
// error carries its standard error.
func command(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
