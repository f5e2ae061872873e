package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/image"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mknod of whiteouts, lchown and overlay mounts")
	}
}

// ent is one tar entry for test layers.
type ent struct {
	name, body, link string
	typ              byte
	mode             int64
}

func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: time.Unix(1e9, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fakeImages serves uncompressed layers from memory and counts opens.
type fakeImages struct {
	mu     sync.Mutex
	layers map[string][]byte
	opens  map[string]int
}

func newFakeImages() *fakeImages {
	return &fakeImages{layers: map[string][]byte{}, opens: map[string]int{}}
}

func (f *fakeImages) add(t testing.TB, ents ...ent) image.Layer {
	b := mkTar(t, ents...)
	sum := sha256.Sum256(b)
	d := "sha256:" + hex.EncodeToString(sum[:])
	f.mu.Lock()
	f.layers[d] = b
	f.mu.Unlock()
	return image.Layer{Digest: d, DiffID: d, MediaType: "application/vnd.oci.image.layer.v1.tar", Size: int64(len(b))}
}

func (f *fakeImages) OpenLayer(ctx context.Context, l image.Layer) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.layers[l.DiffID]
	if !ok {
		return nil, fmt.Errorf("layer %s: %w", l.DiffID, image.ErrNotFound)
	}
	f.opens[l.DiffID]++
	return io.NopCloser(bytes.NewReader(b)), nil
}

// checkOnly asserts that parent holds nothing but the named entries and
// that "outside" is still empty.
func checkNothingOutside(t *testing.T, parent string) {
	t.Helper()
	ents, _ := os.ReadDir(parent)
	for _, e := range ents {
		if e.Name() != "root" && e.Name() != "outside" {
			t.Errorf("written outside the layer: %s", e.Name())
		}
	}
	out, _ := os.ReadDir(filepath.Join(parent, "outside"))
	if len(out) != 0 {
		t.Errorf("written into sibling dir: %v", out)
	}
}

func extractDirs(t *testing.T) (parent, root string) {
	parent = t.TempDir()
	root = filepath.Join(parent, "root")
	os.Mkdir(root, 0o755)
	os.Mkdir(filepath.Join(parent, "outside"), 0o755)
	return parent, root
}

func TestExtractRefusesMaliciousLayers(t *testing.T) {
	needRoot(t)
	cases := []struct {
		name string
		ents []ent
	}{
		{"dotdot traversal", []ent{{name: "../outside/evil", body: "x"}}},
		{"dotdot inside path", []ent{{name: "a/../../outside/evil", body: "x"}}},
		{"write through symlink", []ent{
			{name: "link", typ: tar.TypeSymlink, link: "/etc"},
			{name: "link/passwd", body: "root::0:0::/:/bin/sh\n"},
		}},
		{"write through relative symlink", []ent{
			{name: "link", typ: tar.TypeSymlink, link: "../outside"},
			{name: "link/evil", body: "x"},
		}},
		{"mkdir through symlink", []ent{
			{name: "link", typ: tar.TypeSymlink, link: "../outside"},
			{name: "link/sub/", typ: tar.TypeDir, mode: 0o755},
		}},
		{"hard link to outside", []ent{{name: "passwd", typ: tar.TypeLink, link: "../outside/f"}}},
		{"hard link through symlink", []ent{
			{name: "link", typ: tar.TypeSymlink, link: "/"},
			{name: "passwd", typ: tar.TypeLink, link: "link/etc/passwd"},
		}},
		{"char device", []ent{{name: "dev/mem", typ: tar.TypeChar}}},
		{"block device", []ent{{name: "dev/sda", typ: tar.TypeBlock}}},
		{"whiteout of parent", []ent{{name: "a/.wh..", body: ""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent, root := extractDirs(t)
			os.WriteFile(filepath.Join(parent, "outside-f"), nil, 0o644)
			os.Remove(filepath.Join(parent, "outside-f"))
			err := Extract(context.Background(), bytes.NewReader(mkTar(t, tc.ents...)), root)
			if !errors.Is(err, ErrUnsafeEntry) {
				t.Fatalf("Extract = %v, want ErrUnsafeEntry", err)
			}
			last := tc.ents[len(tc.ents)-1].name
			if !strings.Contains(err.Error(), last) {
				t.Errorf("error %q does not name entry %q", err, last)
			}
			checkNothingOutside(t, parent)
		})
	}
}

func TestExtractAbsolutePathIsRelative(t *testing.T) {
	needRoot(t)
	parent, root := extractDirs(t)
	marker := "berth-test-" + filepath.Base(parent)
	err := Extract(context.Background(), bytes.NewReader(mkTar(t, ent{name: "/tmp/" + marker, body: "x"})), root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("/tmp", marker)); err == nil {
		os.Remove(filepath.Join("/tmp", marker))
		t.Fatal("absolute entry written to the host's /tmp")
	}
	if b, err := os.ReadFile(filepath.Join(root, "tmp", marker)); err != nil || string(b) != "x" {
		t.Fatalf("absolute entry not under the layer: %v", err)
	}
}

func TestExtractMetadata(t *testing.T) {
	needRoot(t)
	_, root := extractDirs(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1234567890, 0)
	hdrs := []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt},
		{Name: "bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 2, Uid: 0, Gid: 0, ModTime: mt},
		{Name: "home/u/f", Typeflag: tar.TypeReg, Mode: 0o600, Size: 2, Uid: 1000, Gid: 1001, ModTime: mt},
		{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "su", ModTime: mt},
		{Name: "bin/su2", Typeflag: tar.TypeLink, Linkname: "bin/su"},
		{Name: "run/fifo", Typeflag: tar.TypeFifo, Mode: 0o600},
	}
	for _, h := range hdrs {
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write([]byte("ok"))
		}
	}
	tw.Close()
	if err := Extract(context.Background(), &buf, root); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, "bin/su"))
	if err != nil || fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 || !fi.ModTime().Equal(mt) {
		t.Errorf("bin/su = %v %v", fi.Mode(), err)
	}
	var st unix.Stat_t
	unix.Lstat(filepath.Join(root, "home/u/f"), &st)
	if st.Uid != 1000 || st.Gid != 1001 {
		t.Errorf("owner = %d:%d", st.Uid, st.Gid)
	}
	if l, _ := os.Readlink(filepath.Join(root, "bin/sh")); l != "su" {
		t.Errorf("symlink = %q", l)
	}
	a, _ := os.Stat(filepath.Join(root, "bin/su"))
	b, _ := os.Stat(filepath.Join(root, "bin/su2"))
	if !os.SameFile(a, b) {
		t.Error("hard link not shared")
	}
	if fi, _ := os.Lstat(filepath.Join(root, "run/fifo")); fi == nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Error("fifo missing")
	}
	if fi, _ := os.Stat(filepath.Join(root, "bin")); !fi.ModTime().Equal(mt) {
		t.Errorf("dir mtime = %v", fi.ModTime())
	}
}

func TestWhiteoutAndOpaqueOverOverlay(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	imgs := newFakeImages()
	lower := imgs.add(t,
		ent{name: "a/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "a/keep", body: "keep"},
		ent{name: "a/gone", body: "gone"},
		ent{name: "d/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "d/old", body: "old"},
	)
	upper := imgs.add(t,
		ent{name: "a/.wh.gone"},
		ent{name: "d/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "d/.wh..wh..opq"},
		ent{name: "d/new", body: "new"},
	)
	s, err := Open(t.TempDir(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	// Two images stacked: lower image, then upper image.
	rf, err := s.Prepare(ctx, "c1", []image.Image{{Layers: []image.Layer{lower}}, {Layers: []image.Layer{upper}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove(ctx, "c1") })
	merged, err := s.Mount(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if merged != rf.Merged {
		t.Fatalf("merged = %s, want %s", merged, rf.Merged)
	}
	if _, err := s.Mount(ctx, "c1"); err != nil {
		t.Fatalf("second mount: %v", err)
	}
	check := map[string]bool{"a/keep": true, "a/gone": false, "d/old": false, "d/new": true}
	for p, want := range check {
		_, err := os.Stat(filepath.Join(merged, p))
		if (err == nil) != want {
			t.Errorf("%s present=%v, want %v", p, err == nil, want)
		}
	}
	// Writes go to the upper dir only.
	if err := os.WriteFile(filepath.Join(merged, "a/keep"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, _ := diffHex(lower.DiffID)
	if b, _ := os.ReadFile(filepath.Join(s.layerDir(h), "a/keep")); string(b) != "keep" {
		t.Errorf("shared layer modified: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(rf.Upper, "a/keep")); string(b) != "changed" {
		t.Errorf("upper = %q", b)
	}
	if err := s.Unmount(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unmount(ctx, "c1"); err != nil {
		t.Fatalf("second unmount: %v", err)
	}
	if m, _ := isMounted(merged); m {
		t.Fatal("still mounted")
	}
}

func TestLayersSharedUnpackedOnceAndGC(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	imgs := newFakeImages()
	base := imgs.add(t, ent{name: "bin/sh", body: "sh"})
	app1 := imgs.add(t, ent{name: "bin/app1", body: "1"})
	app2 := imgs.add(t, ent{name: "bin/app2", body: "2"})
	s, err := Open(t.TempDir(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	baseImg := image.Image{Layers: []image.Layer{base}}
	// Concurrent prepares sharing the base layer.
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i, app := range []image.Layer{app1, app2, app1, app2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Prepare(ctx, fmt.Sprintf("c%d", i), []image.Image{baseImg, {Layers: []image.Layer{app}}}); err != nil {
				t.Error(err)
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.FailNow()
	}
	if n := s.Unpacks(); n != 3 {
		t.Fatalf("unpacks = %d, want 3 (one per distinct layer)", n)
	}
	for d, n := range imgs.opens {
		if n != 1 {
			t.Errorf("layer %s opened %d times", d, n)
		}
	}
	// A layer appearing twice in the stack is kept once, at its top position.
	rf, err := s.Prepare(ctx, "dup", []image.Image{baseImg, {Layers: []image.Layer{app1, base}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rf.Layers) != 2 || rf.Layers[0] != app1.DiffID || rf.Layers[1] != base.DiffID {
		t.Fatalf("dup layers = %v", rf.Layers)
	}
	if _, err := s.Prepare(ctx, "dup", []image.Image{baseImg}); !errors.Is(err, ErrExists) {
		t.Fatalf("re-prepare with other layers: %v", err)
	}
	if _, err := s.Prepare(ctx, "../x", []image.Image{baseImg}); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("bad id: %v", err)
	}

	// GC keeps every layer a container uses.
	if n, err := s.GC(ctx, nil); err != nil || n != 0 {
		t.Fatalf("gc with all in use = %d, %v", n, err)
	}
	for _, id := range []string{"c1", "c3", "dup"} { // the app2 users and dup
		if err := s.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// app2 unused now, but an image still keeps it.
	keepApp2 := func(d string) bool { return d == app2.DiffID }
	if n, err := s.GC(ctx, keepApp2); err != nil || n != 0 {
		t.Fatalf("gc with keep = %d, %v", n, err)
	}
	if n, err := s.GC(ctx, nil); err != nil || n != 1 {
		t.Fatalf("gc = %d, %v; want app2 removed", n, err)
	}
	h, _ := diffHex(app2.DiffID)
	if _, err := os.Stat(s.layerDir(h)); !os.IsNotExist(err) {
		t.Fatal("app2 layer still on disk")
	}
	u, err := s.Usage(ctx)
	if err != nil || u.Layers != 2 || u.Containers != 2 || u.LayerBytes <= 0 {
		t.Fatalf("usage = %+v, %v", u, err)
	}
	// Preparing again after GC unpacks the layer again.
	if _, err := s.Prepare(ctx, "again", []image.Image{baseImg, {Layers: []image.Layer{app2}}}); err != nil {
		t.Fatal(err)
	}
	if n := s.Unpacks(); n != 4 {
		t.Fatalf("unpacks = %d, want 4", n)
	}
}

func TestPrepareRefusesCorruptLayer(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	imgs := newFakeImages()
	l := imgs.add(t, ent{name: "f", body: "x"})
	b := imgs.layers[l.DiffID]
	l2 := l
	l2.DiffID = "sha256:" + strings.Repeat("0", 64)
	imgs.layers[l2.DiffID] = b
	s, err := Open(t.TempDir(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Prepare(ctx, "c", []image.Image{{Layers: []image.Layer{l2}}})
	if !errors.Is(err, ErrCorruptLayer) || !strings.Contains(err.Error(), l2.DiffID) {
		t.Fatalf("Prepare = %v", err)
	}
	if ids, _ := s.List(ctx); len(ids) != 0 {
		t.Fatalf("container left: %v", ids)
	}
	ents, _ := os.ReadDir(s.layersDir())
	if len(ents) != 0 {
		t.Fatalf("layer dirs left: %v", ents)
	}
}

// A record torn by a power cut (records are not synced) does not keep the
// container from being prepared again; its upper dir survives.
func TestPrepareRewritesTornRecord(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	imgs := newFakeImages()
	l := imgs.add(t, ent{name: "f", body: "x"})
	s, err := Open(t.TempDir(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	img := []image.Image{{Layers: []image.Layer{l}}}
	r, err := s.Prepare(ctx, "c", img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Upper, "kept"), []byte("state"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.containerDir("c"), recordFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "c", img); err != nil {
		t.Fatalf("Prepare after a torn record: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(r.Upper, "kept")); err != nil || string(b) != "state" {
		t.Fatalf("upper dir lost: %q, %v", b, err)
	}
	if got, err := s.readRecord("c"); err != nil || len(got.Layers) != 1 || got.Layers[0] != l.DiffID {
		t.Fatalf("record after Prepare = %+v, %v", got, err)
	}
}

func FuzzExtract(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root: mknod of whiteouts and lchown")
	}
	seeds := [][]ent{
		{{name: "a/b", body: "x"}},
		{{name: "../x", body: "x"}},
		{{name: "l", typ: tar.TypeSymlink, link: "/"}, {name: "l/x", body: "x"}},
		{{name: "l", typ: tar.TypeSymlink, link: ".."}, {name: "h", typ: tar.TypeLink, link: "l/x"}},
		{{name: "d/", typ: tar.TypeDir}, {name: "d/.wh.x"}, {name: "d/.wh..wh..opq"}},
		{{name: "f", body: "1"}, {name: "f", typ: tar.TypeDir}, {name: "f/g", typ: tar.TypeSymlink, link: "../../.."}},
	}
	for _, s := range seeds {
		f.Add(mkTar(f, s...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent, err := os.MkdirTemp("", "fuzzextract-")
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			done := make(chan error)
			go func() { done <- os.RemoveAll(parent) }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("cleanup: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("cleanup of %s still running after 5s", parent)
			}
		}()
		root := filepath.Join(parent, "root")
		os.Mkdir(root, 0o755)
		os.Mkdir(filepath.Join(parent, "outside"), 0o755)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = Extract(context.Background(), bytes.NewReader(data), root)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Extract of a %d-byte stream still running after 5s", len(data))
		}
		checkNothingOutside(t, parent)
	})
}
