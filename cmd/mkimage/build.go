package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-io/berth/core/fsutil"
)

// epoch is the mtime of every file and the creation time of every image, so
// that the same inputs give the same digests.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	busyboxPath    = "/bin/busybox"
	busyboxPackage = "busybox-static"
	appPkgPrefix   = "github.com/berth-io/berth/testdata/images/"
)

// spec describes one image mkimage builds.
type spec struct {
	name   string // archive is <name>.tar
	ref    string
	app    bool // a Go program built from testdata/images/<name>
	config v1.Config
}

var specs = []spec{
	{name: "busybox", ref: "berth.local/busybox:1.35", config: v1.Config{
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd: []string{"/bin/sh"},
	}},
	{name: "base-config", ref: "berth.local/base-config:1"},
	{name: "kvdb", ref: "berth.local/kvdb:1", app: true, config: v1.Config{
		Entrypoint: []string{"/bin/kvdb"}, Cmd: []string{"-listen", ":7000", "-data", "/data"},
	}},
	{name: "sensor", ref: "berth.local/sensor:1", app: true, config: v1.Config{
		Entrypoint: []string{"/bin/sensor"}, Cmd: []string{"-db", "kvdb:7000"},
	}},
	{name: "dashboard", ref: "berth.local/dashboard:1", app: true, config: v1.Config{
		Entrypoint: []string{"/bin/dashboard"}, Cmd: []string{"-db", "kvdb:7000"},
	}},
	{name: "cantool", ref: "berth.local/cantool:1", app: true, config: v1.Config{
		Entrypoint: []string{"/bin/cantool"},
	}},
}

// result is one archive written.
type result struct {
	Path, Ref, Digest string
}

func run(args []string) error {
	fl := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	out := fl.String("o", "", "output directory (required)")
	only := fl.String("only", "", "comma-separated image names to build (default: all)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-o DIR is required")
	}
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	res, err := build(context.Background(), *out, names)
	for _, r := range res {
		fmt.Printf("%s\t%s\t%s\n", r.Path, r.Ref, r.Digest)
	}
	return err
}

// build writes the archives of the named images (all if names is empty)
// into out.
func build(ctx context.Context, out string, names []string) ([]result, error) {
	var todo []spec
	for _, n := range names {
		i := slices.IndexFunc(specs, func(s spec) bool { return s.name == n })
		if i < 0 {
			return nil, fmt.Errorf("unknown image %q (have busybox, base-config, kvdb, sensor, dashboard, cantool)", n)
		}
		todo = append(todo, specs[i])
	}
	if len(names) == 0 {
		todo = specs
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "mkimage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	var apps []string
	for _, s := range todo {
		if s.app {
			apps = append(apps, s.name)
		}
	}
	if err := buildApps(ctx, filepath.Join(tmp, "bin"), apps); err != nil {
		return nil, err
	}
	var res []result
	for _, s := range todo {
		var files []entry
		switch {
		case s.name == "busybox":
			files, err = busyboxFiles(ctx)
		case s.name == "base-config":
			files = []entry{
				{name: "etc/", dir: true, mode: 0o755},
				{name: "etc/berth-demo.conf", mode: 0o644, body: []byte(demoConf)},
			}
		case s.app:
			var b []byte
			b, err = os.ReadFile(filepath.Join(tmp, "bin", s.name))
			files = []entry{
				{name: "bin/", dir: true, mode: 0o755},
				{name: "bin/" + s.name, mode: 0o755, body: b},
			}
		}
		if err != nil {
			return res, fmt.Errorf("%s: %w", s.name, err)
		}
		r, err := writeArchive(s, files, out, tmp)
		if err != nil {
			return res, fmt.Errorf("%s: %w", s.name, err)
		}
		res = append(res, r)
	}
	return res, nil
}

const demoConf = `# berth demo: this file comes from the base-config image, stacked
# between busybox (below) and the application image (above).
site = "berth-demo"
log_level = "info"
`

// buildApps compiles the named programs, statically, into dir.
func buildApps(ctx context.Context, dir string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := []string{"build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", dir + "/"}
	for _, n := range names {
		args = append(args, appPkgPrefix+n)
	}
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if outb, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(names, " "), err, outb)
	}
	return nil
}

// busyboxFiles lists /bin/busybox, a symlink per applet, and minimal /etc.
func busyboxFiles(ctx context.Context) ([]entry, error) {
	bb, err := os.ReadFile(busyboxPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s not found: install the Debian package %s (apt-get install %s)", busyboxPath, busyboxPackage, busyboxPackage)
	}
	if err != nil {
		return nil, err
	}
	list, err := exec.CommandContext(ctx, busyboxPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w (is it %s?)", busyboxPath, err, busyboxPackage)
	}
	files := []entry{
		{name: "bin/busybox", mode: 0o755, body: bb},
		{name: "etc/passwd", mode: 0o644, body: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{name: "etc/group", mode: 0o644, body: []byte("root:x:0:\nnobody:x:65534:\n")},
		{name: "etc/hosts", mode: 0o644},
		{name: "tmp/", dir: true, mode: 0o1777},
		{name: "root/", dir: true, mode: 0o700},
	}
	for _, a := range strings.Fields(string(list)) {
		a = strings.TrimPrefix(path.Clean("/"+a), "/")
		if a == "bin/busybox" || a == "" {
			continue
		}
		files = append(files, entry{name: a, link: "/bin/busybox"})
	}
	return files, nil
}

// entry is one file of a layer.
type entry struct {
	name string // relative; directories end in "/"
	mode int64
	dir  bool
	link string // symlink target
	body []byte
}

// layerTar writes files, plus any missing parent directories, sorted by
// name, owned by root, with mtime epoch.
func layerTar(files []entry) ([]byte, error) {
	all := map[string]entry{}
	for _, f := range files {
		all[f.name] = f
		for d := path.Dir(strings.TrimSuffix(f.name, "/")); d != "."; d = path.Dir(d) {
			if _, ok := all[d+"/"]; !ok {
				all[d+"/"] = entry{name: d + "/", dir: true, mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := all[n]
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: epoch, Format: tar.FormatPAX, Uname: "root", Gname: "root"}
		switch {
		case f.dir:
			h.Typeflag = tar.TypeDir
		case f.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeArchive builds the image and writes <out>/<name>.tar as an OCI
// archive (written to a temp file and renamed).
func writeArchive(s spec, files []entry, out, tmp string) (result, error) {
	lt, err := layerTar(files)
	if err != nil {
		return result{}, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(lt)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return result{}, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return result{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return result{}, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: epoch}
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = s.config
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return result{}, err
	}
	img = mutate.Annotations(img, map[string]string{"org.opencontainers.image.title": s.name}).(v1.Image)
	dg, err := img.Digest()
	if err != nil {
		return result{}, err
	}

	dir := filepath.Join(tmp, "layout-"+s.name)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return result{}, err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": s.ref,
	})); err != nil {
		return result{}, err
	}
	dst := filepath.Join(out, s.name+".tar")
	if err := tarDir(dir, dst); err != nil {
		return result{}, err
	}
	return result{Path: dst, Ref: s.ref, Digest: dg.String()}, nil
}

// tarDir writes the files under dir, sorted, into a tar at dst, replacing
// dst atomically.
func tarDir(dir, dst string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	return fsutil.WriteFileFrom(dst, 0o644, func(w io.Writer) error {
		tw := tar.NewWriter(w)
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
				return err
			}
			if _, err := tw.Write(b); err != nil {
				return err
			}
		}
		return tw.Close()
	})
}
