package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testImage builds a one-layer OCI image holding files.
func testImage(t *testing.T, files map[string]string, cmd ...string) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Cmd = cmd
	cf.Created = v1.Time{Time: time.Unix(1e9, 0).UTC()}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeOCIArchive writes img as an OCI archive named ref; corrupt, if set,
// may change a blob's bytes (by digest hex) on the way.
func writeOCIArchive(t *testing.T, img v1.Image, ref, out string, corrupt func(hex string, b []byte) []byte) {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{AnnotationRefName: ref})); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if corrupt != nil {
			b = corrupt(filepath.Base(path), b)
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func layerDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	ls, _ := img.Layers()
	d, err := ls[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestImportListResolveRemoveGC(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	ociImg := testImage(t, map[string]string{"etc/a": "oci"}, "/bin/a")
	dockerImg := testImage(t, map[string]string{"etc/b": "docker"}, "/bin/b")
	ociPath := filepath.Join(dir, "busybox.tar")
	writeOCIArchive(t, ociImg, "berth.local/busybox:1.35", ociPath, nil)
	dockerPath := filepath.Join(dir, "app.tar")
	tag, _ := name.NewTag("berth.local/app:2")
	if err := tarball.WriteToFile(dockerPath, tag, dockerImg); err != nil {
		t.Fatal(err)
	}

	got, err := s.Import(ctx, ociPath, "")
	if err != nil {
		t.Fatal(err)
	}
	wantDigest, _ := ociImg.Digest()
	if len(got) != 1 || got[0].Ref != "berth.local/busybox:1.35" || got[0].Digest != wantDigest.String() {
		t.Fatalf("oci import = %+v", got)
	}
	if c := got[0].Config.Cmd; len(c) != 1 || c[0] != "/bin/a" {
		t.Errorf("config cmd = %v", c)
	}
	if !got[0].Created.Equal(time.Unix(1e9, 0)) || got[0].Size <= 0 || len(got[0].Layers) != 1 {
		t.Errorf("image = %+v", got[0])
	}
	dgot, err := s.Import(ctx, dockerPath, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(dgot) != 1 || dgot[0].Ref != "berth.local/app:2" {
		t.Fatalf("docker import = %+v", dgot)
	}

	// Re-import is idempotent.
	if _, err := s.Import(ctx, ociPath, ""); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Ref != "berth.local/app:2" || list[1].Ref != "berth.local/busybox:1.35" {
		t.Fatalf("list = %+v", list)
	}

	resolveCases := []struct {
		ref, want string
		err       error
	}{
		{"berth.local/busybox:1.35", "berth.local/busybox:1.35", nil},
		{"busybox:1.35", "berth.local/busybox:1.35", nil},
		{"busybox", "", ErrNotFound}, // busybox:latest
		{got[0].Digest, "berth.local/busybox:1.35", nil},
		{"berth.local/busybox@" + got[0].Digest, "berth.local/busybox:1.35", nil},
		{strings.TrimPrefix(got[0].Digest, "sha256:")[:12], "berth.local/busybox:1.35", nil},
		{"berth.local/app:2", "berth.local/app:2", nil},
		{"nope:1", "", ErrNotFound},
		{"UPPER:1", "", ErrInvalidRef},
	}
	for _, tc := range resolveCases {
		img, err := s.Resolve(ctx, tc.ref)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.ref) {
				t.Errorf("Resolve(%q) err = %v, want %v naming the ref", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil || img.Ref != tc.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tc.ref, img.Ref, err, tc.want)
		}
	}

	// A store reopened from disk sees the same names.
	s2, err := Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	if l2, _ := s2.List(ctx); len(l2) != 2 {
		t.Fatalf("reopened list = %+v", l2)
	}

	// OpenLayer streams the verified uncompressed tar.
	rc, err := s.OpenLayer(ctx, got[0].Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != "etc/a" {
		t.Fatalf("layer entry = %v, %v", hdr, err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatalf("verified read: %v", err)
	}
	rc.Close()

	if err := s.Remove(ctx, "berth.local/app:2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, "berth.local/app:2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("resolve after remove: %v", err)
	}
	st, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.BlobsRemoved != 3 || st.BytesFreed <= 0 { // manifest, config, layer
		t.Fatalf("gc = %+v, want 3 blobs", st)
	}
	// The kept image is intact.
	if _, err := s.Resolve(ctx, "busybox:1.35"); err != nil {
		t.Fatal(err)
	}

	if st, _ := s.GC(ctx); st.BlobsRemoved != 0 {
		t.Fatalf("second gc removed %d", st.BlobsRemoved)
	}
	// Docker Hub's official images answer to their short names, as in Docker.
	hubPath := filepath.Join(dir, "hello.tar")
	hub, _ := name.NewTag("docker.io/library/hello:1")
	if err := tarball.WriteToFile(hubPath, hub, dockerImg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, hubPath, ""); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"hello:1", "library/hello:1", "docker.io/library/hello:1"} {
		if im, err := s.Resolve(ctx, ref); err != nil || im.Ref != "docker.io/library/hello:1" {
			t.Errorf("Resolve(%q) = %q, %v", ref, im.Ref, err)
		}
	}
	if err := s.Remove(ctx, "hello:1"); err != nil {
		t.Fatal(err)
	}
}

func TestImportNames(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	a := testImage(t, map[string]string{"a": "1"})
	b := testImage(t, map[string]string{"a": "2"})
	pa := filepath.Join(dir, "kvdb.tar")
	writeOCIArchive(t, a, "1.0", pa, nil)
	imgs, err := s.Import(ctx, pa, "")
	if err != nil || imgs[0].Ref != "kvdb:1.0" {
		t.Fatalf("bare tag import = %+v, %v", imgs, err)
	}
	imgs, err = s.Import(ctx, pa, "berth.local/other")
	if err != nil || imgs[0].Ref != "berth.local/other:latest" {
		t.Fatalf("override import = %+v, %v", imgs, err)
	}
	// Importing a new digest under an existing name moves the name.
	pb := filepath.Join(dir, "b.tar")
	writeOCIArchive(t, b, "kvdb:1.0", pb, nil)
	if _, err := s.Import(ctx, pb, ""); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Resolve(ctx, "kvdb:1.0")
	bd, _ := b.Digest()
	if got.Digest != bd.String() {
		t.Fatalf("kvdb:1.0 = %s, want moved to %s", got.Digest, bd)
	}
	if l, _ := s.List(ctx); len(l) != 2 {
		t.Fatalf("list = %+v", l)
	}
}

func TestImportRefusesDamagedArchives(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	good := testImage(t, map[string]string{"keep": "x"})
	gp := filepath.Join(dir, "good.tar")
	writeOCIArchive(t, good, "good:1", gp, nil)
	if _, err := s.Import(ctx, gp, ""); err != nil {
		t.Fatal(err)
	}
	bad := testImage(t, map[string]string{"etc/passwd": strings.Repeat("root:x:0:0::/:/bin/sh\n", 50)})
	ld := layerDigest(t, bad)

	flipped := filepath.Join(dir, "flipped.tar")
	writeOCIArchive(t, bad, "bad:1", flipped, func(h string, b []byte) []byte {
		if h == ld.Hex {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 0xff
		}
		return b
	})
	truncated := filepath.Join(dir, "truncated.tar")
	writeOCIArchive(t, bad, "bad:1", truncated, nil)
	fi, _ := os.Stat(truncated)
	if err := os.Truncate(truncated, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	truncatedMid := filepath.Join(dir, "truncated-mid.tar")
	writeOCIArchive(t, bad, "bad:1", truncatedMid, nil)
	if err := os.Truncate(truncatedMid, fi.Size()/2+100); err != nil {
		t.Fatal(err)
	}
	notTar := filepath.Join(dir, "x.tar")
	os.WriteFile(notTar, []byte("hello, not a tar"), 0o644)

	cases := []struct {
		name, path string
		want       error
		mention    string
	}{
		{"flipped byte in layer", flipped, ErrCorrupt, ld.String()},
		{"truncated archive", truncated, ErrCorrupt, "truncated.tar"},
		{"truncated inside an entry", truncatedMid, ErrCorrupt, "truncated-mid.tar"},
		{"not a tar", notTar, ErrUnsupportedArchive, "x.tar"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Import(ctx, tc.path, "")
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("Import = %v, want %v mentioning %s", err, tc.want, tc.mention)
			}
			l, _ := s.List(ctx)
			if len(l) != 1 || l[0].Ref != "good:1" {
				t.Fatalf("list changed: %+v", l)
			}
			if _, err := s.Resolve(ctx, "bad:1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("bad:1 resolvable: %v", err)
			}
			ents, _ := os.ReadDir(s.blobDir())
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), tmpPrefix) {
					t.Fatalf("temp file left: %s", e.Name())
				}
			}
		})
	}
}

func TestOpenLayerDetectsCorruptBlob(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	img := testImage(t, map[string]string{"f": strings.Repeat("data", 1000)})
	p := filepath.Join(dir, "i.tar")
	writeOCIArchive(t, img, "i:1", p, nil)
	imgs, err := s.Import(ctx, p, "")
	if err != nil {
		t.Fatal(err)
	}
	l := imgs[0].Layers[0]
	h, _ := v1.NewHash(l.Digest)
	bp := s.blobPath(h)
	b, _ := os.ReadFile(bp)
	b[len(b)-10] ^= 0x01 // inside the gzip trailer/data
	os.Chmod(bp, 0o644)
	if err := os.WriteFile(bp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := s.OpenLayer(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), l.Digest) {
		t.Fatalf("read corrupt layer: %v", err)
	}
}
