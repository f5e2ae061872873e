package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-io/berth/core/fsutil"
)

// maxMetaSize bounds index.json, oci-layout and manifests read into memory.
const maxMetaSize = 4 << 20

type archiveKind int

const (
	kindOCI archiveKind = iota + 1
	kindDocker
)

// named is one image found in an archive, before names are normalized.
type named struct {
	names []string // as the archive carries them; may be bare tags or empty
	desc  v1.Descriptor
}

// Import adds the images in the archive at path to the store and returns
// them. The archive is an OCI archive (a tar of an OCI image layout) or a
// docker-save archive, optionally gzip-compressed; which one is detected
// from its content.
//
// Names: an OCI archive's org.opencontainers.image.ref.name may be a full
// reference ("berth.local/busybox:1.35") or a bare tag ("1.35"); a bare tag
// is joined to the archive's file name without extension ("busybox.tar" gives
// "busybox:1.35"). A docker-save archive names images by RepoTags. A
// non-empty name overrides every name in the archive (and then the archive
// must hold exactly one image). Importing a name that exists moves it to the
// new digest; importing the same content again changes nothing.
//
// Every blob is verified against its digest (and for docker-save layers,
// against the config's diffID) before it is renamed into the store. On any
// error index.json is untouched; blobs already written stay unreferenced
// until the next GC. Import and GC exclude each other; imports may run
// concurrently.
func (s *Store) Import(ctx context.Context, archive string, name string) ([]Image, error) {
	var override string
	if name != "" {
		n, err := NormalizeRef(name)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", archive, err)
		}
		if strings.Contains(n, "@") {
			return nil, fmt.Errorf("import %s: %w: name %q must be a tag, not a digest", archive, ErrInvalidRef, name)
		}
		override = n
	}

	s.gcMu.RLock()
	defer s.gcMu.RUnlock()

	src, cleanup, err := s.gunzipIfNeeded(ctx, archive)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", archive, err)
	}
	defer cleanup()

	kind, err := detect(ctx, src, archive)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", archive, err)
	}
	var found []named
	switch kind {
	case kindOCI:
		found, err = s.importOCI(ctx, src, archive)
	case kindDocker:
		found, err = s.importDocker(ctx, src, archive)
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", archive, err)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("import %s: %w: archive holds no image", archive, ErrUnsupportedArchive)
	}
	if override != "" && len(found) > 1 {
		return nil, fmt.Errorf("import %s: %w: archive holds %d images, cannot give them all the name %q", archive, ErrInvalidRef, len(found), name)
	}

	// Decide every name before touching the index.
	type entry struct {
		ref  string
		desc v1.Descriptor
	}
	var entries []entry
	for _, f := range found {
		refs := f.names
		if override != "" {
			refs = []string{override}
		}
		if len(refs) == 0 {
			return nil, fmt.Errorf("import %s: %w: image %s carries no name; pass one", archive, ErrInvalidRef, f.desc.Digest)
		}
		for _, r := range refs {
			if isTagOnly(r) {
				r = repoFromFile(archive) + ":" + r
			}
			n, err := NormalizeRef(r)
			if err != nil {
				return nil, fmt.Errorf("import %s: %w", archive, err)
			}
			if strings.Contains(n, "@") {
				return nil, fmt.Errorf("import %s: %w: image name %q is a digest", archive, ErrInvalidRef, r)
			}
			entries = append(entries, entry{ref: n, desc: f.desc})
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.index
	idx.Manifests = slices.Clone(idx.Manifests)
	var out []Image
	for _, e := range entries {
		d := v1.Descriptor{
			MediaType:   e.desc.MediaType,
			Size:        e.desc.Size,
			Digest:      e.desc.Digest,
			Annotations: map[string]string{AnnotationRefName: e.ref},
		}
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(x v1.Descriptor) bool { return refOf(x) == e.ref })
		idx.Manifests = append(idx.Manifests, d)
		img, err := s.imageLocked(d)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", archive, err)
		}
		out = append(out, img)
	}
	if err := s.writeIndex(idx); err != nil {
		return nil, fmt.Errorf("import %s: %w", archive, err)
	}
	s.index = idx
	for _, img := range out {
		s.log.Info("image imported", "ref", img.Ref, "digest", img.Digest, "size", img.Size)
	}
	return out, nil
}

// repoFromFile derives a repository name from an archive's file name.
func repoFromFile(p string) string {
	b := strings.ToLower(filepath.Base(p))
	for _, ext := range []string{".tar.gz", ".tgz", ".tar", ".oci"} {
		if strings.HasSuffix(b, ext) {
			return strings.TrimSuffix(b, ext)
		}
	}
	return b
}

// gunzipIfNeeded returns a path to an uncompressed copy of archive if it is
// gzip-compressed (a temp file in the store, removed by cleanup), or archive
// itself.
func (s *Store) gunzipIfNeeded(ctx context.Context, archive string) (string, func(), error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, _ := br.Peek(2)
	if !bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return archive, func() {}, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return "", nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
	}
	tmp, err := os.CreateTemp(s.blobDir(), tmpPrefix+"import-*")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(tmp.Name()) }
	_, err = io.Copy(tmp, ctxReader{ctx, zr})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) {
			return "", nil, fmt.Errorf("%w: gzip stream truncated or damaged: %v", ErrCorrupt, err)
		}
		return "", nil, err
	}
	return tmp.Name(), cleanup, nil
}

// detect scans the tar's entry names. An archive with index.json and
// oci-layout is an OCI archive (docker >= 25 writes both layouts; OCI wins);
// one with manifest.json is a docker-save archive.
func detect(ctx context.Context, src, archive string) (archiveKind, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var hasIndex, hasLayout, hasManifest, hasBlobs bool
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if n == 0 {
				return 0, fmt.Errorf("%w: not a tar archive: %v", ErrUnsupportedArchive, err)
			}
			return 0, fmt.Errorf("%w: %s: archive truncated or damaged after %d entries: %v", ErrCorrupt, archive, n, err)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return 0, fmt.Errorf("%w: %s: entry %s truncated: %v", ErrCorrupt, archive, hdr.Name, err)
		}
		switch cleanName(hdr.Name) {
		case indexFile:
			hasIndex = true
		case layoutFile:
			hasLayout = true
		case "manifest.json":
			hasManifest = true
		default:
			hasBlobs = hasBlobs || strings.HasPrefix(cleanName(hdr.Name), "blobs/")
		}
	}
	switch {
	case hasIndex && hasLayout:
		return kindOCI, nil
	case hasManifest:
		return kindDocker, nil
	case hasBlobs || hasIndex || hasLayout:
		return 0, fmt.Errorf("%w: %s: OCI archive lacks index.json or oci-layout (truncated?)", ErrCorrupt, archive)
	default:
		return 0, fmt.Errorf("%w: %s has neither index.json+oci-layout (OCI) nor manifest.json (docker save)", ErrUnsupportedArchive, archive)
	}
}

func cleanName(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

// importOCI streams the blobs of an OCI archive into the store and returns
// the images its index.json names.
func (s *Store) importOCI(ctx context.Context, src, archive string) ([]named, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var indexJSON []byte
	sizes := map[v1.Hash]int64{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, archive, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		n := cleanName(hdr.Name)
		switch {
		case n == indexFile:
			if hdr.Size > maxMetaSize {
				return nil, fmt.Errorf("%w: %s: index.json is %d bytes", ErrUnsupportedArchive, archive, hdr.Size)
			}
			if indexJSON, err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("%w: %s: index.json: %v", ErrCorrupt, archive, err)
			}
		case n == layoutFile:
			b, err := io.ReadAll(io.LimitReader(tr, maxMetaSize))
			if err != nil {
				return nil, fmt.Errorf("%w: %s: oci-layout: %v", ErrCorrupt, archive, err)
			}
			if !bytes.Contains(b, []byte(`"1.0.0"`)) {
				return nil, fmt.Errorf("%w: %s: oci-layout %s: want imageLayoutVersion 1.0.0", ErrUnsupportedArchive, archive, bytes.TrimSpace(b))
			}
		case strings.HasPrefix(n, "blobs/"):
			parts := strings.Split(n, "/")
			if len(parts) != 3 {
				continue
			}
			h, err := v1.NewHash(parts[1] + ":" + parts[2])
			if err != nil || h.Algorithm != "sha256" {
				return nil, fmt.Errorf("%w: %s: blob %s: only sha256 digests are supported", ErrUnsupportedArchive, archive, n)
			}
			if err := s.writeBlob(ctx, h, hdr.Size, tr, archive+":"+n); err != nil {
				return nil, err
			}
			sizes[h] = hdr.Size
		}
	}
	if indexJSON == nil {
		return nil, fmt.Errorf("%w: %s: no index.json", ErrCorrupt, archive)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(indexJSON))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: index.json: %v", ErrCorrupt, archive, err)
	}
	var out []named
	for _, d := range idx.Manifests {
		md, err := s.pickImage(d, archive, 0)
		if err != nil {
			return nil, err
		}
		if err := s.checkImageBlobs(md, archive); err != nil {
			return nil, err
		}
		var names []string
		if n := d.Annotations[annotationContainerdName]; n != "" {
			names = append(names, n)
		} else if n := d.Annotations[AnnotationRefName]; n != "" {
			names = append(names, n)
		}
		out = append(out, named{names: names, desc: md})
	}
	return out, nil
}

// pickImage turns an index.json descriptor into an image manifest
// descriptor, choosing linux/GOARCH from an image index.
func (s *Store) pickImage(d v1.Descriptor, archive string, depth int) (v1.Descriptor, error) {
	switch {
	case d.MediaType.IsImage():
		return d, nil
	case d.MediaType.IsIndex() && depth < 2:
		b, err := s.readBlob(d.Digest)
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%s: %w", archive, err)
		}
		idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%w: %s: index %s: %v", ErrCorrupt, archive, d.Digest, err)
		}
		want := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
		for _, m := range idx.Manifests {
			if m.Platform == nil || m.Platform.Satisfies(want) || len(idx.Manifests) == 1 {
				return s.pickImage(m, archive, depth+1)
			}
		}
		return v1.Descriptor{}, fmt.Errorf("%w: %s: index %s has no image for linux/%s", ErrUnsupportedArchive, archive, d.Digest, runtime.GOARCH)
	default:
		return v1.Descriptor{}, fmt.Errorf("%w: %s: descriptor %s has media type %q", ErrUnsupportedArchive, archive, d.Digest, d.MediaType)
	}
}

// checkImageBlobs verifies that the manifest and every blob it references
// are in the store with the declared sizes.
func (s *Store) checkImageBlobs(md v1.Descriptor, archive string) error {
	mb, err := s.readBlob(md.Digest)
	if err != nil {
		return fmt.Errorf("%s: %w", archive, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(mb))
	if err != nil {
		return fmt.Errorf("%w: %s: manifest %s: %v", ErrCorrupt, archive, md.Digest, err)
	}
	for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		fi, err := os.Stat(s.blobPath(b.Digest))
		if err != nil {
			return fmt.Errorf("%w: %s: blob %s referenced by manifest %s is missing from the archive", ErrCorrupt, archive, b.Digest, md.Digest)
		}
		if fi.Size() != b.Size {
			return fmt.Errorf("%w: %s: blob %s is %d bytes, manifest %s says %d", ErrCorrupt, archive, b.Digest, fi.Size(), md.Digest, b.Size)
		}
	}
	return nil
}

// importDocker copies the images of a docker-save archive into the store.
func (s *Store) importDocker(ctx context.Context, src, archive string) ([]named, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(src) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: manifest.json: %v", ErrCorrupt, archive, err)
	}
	var out []named
	for i, e := range m {
		var tag *name.Tag
		if len(e.RepoTags) > 0 {
			t, err := name.NewTag(e.RepoTags[0])
			if err != nil {
				return nil, fmt.Errorf("%w: %s: RepoTags %q: %v", ErrInvalidRef, archive, e.RepoTags[0], err)
			}
			tag = &t
		} else if len(m) > 1 {
			return nil, fmt.Errorf("%w: %s: image %d of %d has no RepoTags", ErrUnsupportedArchive, archive, i+1, len(m))
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, archive, err)
		}
		d, err := s.writeImage(ctx, img, archive)
		if err != nil {
			return nil, err
		}
		out = append(out, named{names: e.RepoTags, desc: d})
	}
	return out, nil
}

// writeImage writes an image's layers, config and manifest as blobs,
// checking each layer's uncompressed content against its diffID.
func (s *Store) writeImage(ctx context.Context, img v1.Image, archive string) (v1.Descriptor, error) {
	layers, err := img.Layers()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, archive, err)
	}
	for _, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, archive, err)
		}
		if err := verifyStream(ctx, l.Uncompressed, diffID, archive); err != nil {
			return v1.Descriptor{}, err
		}
		dg, err := l.Digest()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%w: %s: layer %s: %v", ErrCorrupt, archive, diffID, err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%w: %s: layer %s: %v", ErrCorrupt, archive, dg, err)
		}
		err = s.writeBlob(ctx, dg, -1, rc, archive)
		rc.Close()
		if err != nil {
			return v1.Descriptor{}, err
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%w: %s: config: %v", ErrCorrupt, archive, err)
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%w: %s: config: %v", ErrCorrupt, archive, err)
	}
	if err := s.writeBlob(ctx, cfgName, int64(len(cfg)), bytes.NewReader(cfg), archive); err != nil {
		return v1.Descriptor{}, err
	}
	man, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%w: %s: manifest: %v", ErrCorrupt, archive, err)
	}
	dg, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%w: %s: manifest: %v", ErrCorrupt, archive, err)
	}
	if err := s.writeBlob(ctx, dg, int64(len(man)), bytes.NewReader(man), archive); err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		mt = types.DockerManifestSchema2
	}
	return v1.Descriptor{MediaType: mt, Size: int64(len(man)), Digest: dg}, nil
}

// verifyStream reads a stream to EOF and checks its sha256.
func verifyStream(ctx context.Context, open func() (io.ReadCloser, error), want v1.Hash, archive string) error {
	rc, err := open()
	if err != nil {
		return fmt.Errorf("%w: %s: layer %s: %v", ErrCorrupt, archive, want, err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, rc}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %s: layer %s: %v", ErrCorrupt, archive, want, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != want.String() {
		return fmt.Errorf("%w: %s: layer with diffID %s has content digest %s", ErrCorrupt, archive, want, got)
	}
	return nil
}

// writeBlob copies r into the store as blob h, verifying size (if >= 0)
// and digest before renaming it into place. A blob already present is kept
// (it was verified when written). src names the origin in errors.
func (s *Store) writeBlob(ctx context.Context, h v1.Hash, size int64, r io.Reader, src string) error {
	if h.Algorithm != "sha256" {
		return fmt.Errorf("%w: %s: blob %s: only sha256 digests are supported", ErrUnsupportedArchive, src, h)
	}
	p := s.blobPath(h)
	if fi, err := os.Stat(p); err == nil && (size < 0 || fi.Size() == size) {
		return nil
	}
	// The content is verified before the rename: a bad blob never gets its
	// name, and fsutil removes the temporary file.
	return fsutil.WriteFileFrom(p, 0o444, func(w io.Writer) error {
		hs := sha256.New()
		n, err := io.Copy(io.MultiWriter(w, hs), ctxReader{ctx, r})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: blob %s from %s: read: %v", ErrCorrupt, h, src, err)
		}
		if size >= 0 && n != size {
			return fmt.Errorf("%w: blob %s from %s: %d bytes, want %d", ErrCorrupt, h, src, n, size)
		}
		if got := hex.EncodeToString(hs.Sum(nil)); got != h.Hex {
			return fmt.Errorf("%w: blob %s from %s: content has digest sha256:%s", ErrCorrupt, h, src, got)
		}
		return nil
	})
}
