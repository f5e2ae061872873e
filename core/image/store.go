// Package image owns berth's local content-addressed store of OCI images:
// importing OCI and docker-save archives, naming images, resolving a
// reference to a digest, streaming verified layers to the rootfs package, and
// garbage-collecting blobs no name references.
//
// On disk the store is an OCI image layout (oci-layout, index.json,
// blobs/sha256/...), so standard tools can read it. Names live in index.json
// as the org.opencontainers.image.ref.name annotation of each manifest
// descriptor (one descriptor per name). Every blob is verified against its
// digest before it is renamed into place; index.json is replaced atomically
// (temp file, fsync, rename, fsync of the directory) and only after every
// blob it references is in place, so a crash leaves either the old or the
// new set of names, never a name pointing at missing content.
package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-io/berth/core/fsutil"
)

// AnnotationRefName is the OCI annotation that carries an image's name in
// index.json.
const AnnotationRefName = "org.opencontainers.image.ref.name"

// annotationContainerdName is the full name docker (>= 25) and containerd
// write beside a bare-tag ref.name in OCI archives.
const annotationContainerdName = "io.containerd.image.name"

const (
	indexFile  = "index.json"
	layoutFile = "oci-layout"
	layoutJSON = `{"imageLayoutVersion":"1.0.0"}`
	// tmpPrefix starts every temporary name in blobs/sha256; Open removes
	// them. Blob writes go through fsutil, so it is fsutil's prefix.
	tmpPrefix = fsutil.TempPrefix
)

// Image describes one named image in the store.
type Image struct {
	Ref     string    // normalized reference, e.g. "berth.local/busybox:1.35"
	Digest  string    // manifest digest "sha256:..."
	Size    int64     // manifest + config + compressed layers, bytes
	Created time.Time // from the image config; zero if absent
	Layers  []Layer   // bottom to top
	Config  Config
}

// Layer is one layer of an image.
type Layer struct {
	Digest    string // digest of the blob as stored (usually compressed)
	DiffID    string // digest of the uncompressed tar
	MediaType string
	Size      int64 // blob size in bytes
}

// Config is the part of an image's runtime config berth uses.
type Config struct {
	Entrypoint, Cmd, Env []string
	WorkingDir, User     string
}

// GCStats reports what a GC run removed.
type GCStats struct {
	BlobsRemoved int
	BytesFreed   int64
}

// Store is a local OCI image store rooted at one directory. It is safe for
// concurrent use by goroutines; one process must own the directory.
type Store struct {
	root string
	log  *slog.Logger

	// gcMu is held shared by imports while they write blobs and exclusively
	// by GC, so GC never deletes a blob an import is about to reference.
	gcMu sync.RWMutex

	mu    sync.Mutex // guards index and cache
	index v1.IndexManifest
	cache map[string]Image // manifest digest -> image (Ref unset)
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// Open opens the store at root, creating an empty OCI layout if the directory
// is new. Temporary files left by an interrupted write are removed.
func Open(root string, opts ...Option) (*Store, error) {
	s := &Store{
		root:  root,
		log:   slog.New(slog.DiscardHandler),
		cache: map[string]Image{},
	}
	for _, o := range opts {
		o(s)
	}
	if err := os.MkdirAll(s.blobDir(), 0o755); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	if err := s.cleanTemp(); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	if _, err := os.Stat(filepath.Join(root, layoutFile)); errors.Is(err, fs.ErrNotExist) {
		if err := fsutil.WriteFile(filepath.Join(root, layoutFile), []byte(layoutJSON), 0o644); err != nil {
			return nil, fmt.Errorf("open image store: %w", err)
		}
	}
	b, err := os.ReadFile(filepath.Join(root, indexFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.index = v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
		if err := s.writeIndex(s.index); err != nil {
			return nil, fmt.Errorf("open image store: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("open image store: %w", err)
	default:
		idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("open image store: %s: %w: %v", filepath.Join(root, indexFile), ErrCorrupt, err)
		}
		s.index = *idx
	}
	return s, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) blobDir() string { return filepath.Join(s.root, "blobs", "sha256") }

func (s *Store) blobPath(h v1.Hash) string {
	return filepath.Join(s.root, "blobs", h.Algorithm, h.Hex)
}

func (s *Store) cleanTemp() error {
	ents, err := os.ReadDir(s.blobDir())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.Remove(filepath.Join(s.blobDir(), e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// List returns every named image, sorted by reference. An image with two
// names appears twice.
func (s *Store) List(ctx context.Context) ([]Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Image, 0, len(s.index.Manifests))
	for _, d := range s.index.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := s.imageLocked(d)
		if err != nil {
			return nil, fmt.Errorf("list images: %w", err)
		}
		out = append(out, img)
	}
	slices.SortFunc(out, func(a, b Image) int { return strings.Compare(a.Ref, b.Ref) })
	return out, nil
}

// Resolve finds the image a reference names. Accepted forms:
// a name ("busybox" is "busybox:latest"), a name without its registry host
// when that is unique ("busybox:1.35" finds "berth.local/busybox:1.35"),
// "name@sha256:<hex>", a bare "sha256:<hex>", or a unique digest prefix of
// at least 4 hex digits. The error wraps ErrNotFound, ErrAmbiguous or
// ErrInvalidRef and names the reference.
func (s *Store) Resolve(ctx context.Context, ref string) (Image, error) {
	if err := ctx.Err(); err != nil {
		return Image{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, _, err := s.findLocked(ref)
	if err != nil {
		return Image{}, fmt.Errorf("resolve %q: %w", ref, err)
	}
	img, err := s.imageLocked(d)
	if err != nil {
		return Image{}, fmt.Errorf("resolve %q: %w", ref, err)
	}
	return img, nil
}

func refOf(d v1.Descriptor) string { return d.Annotations[AnnotationRefName] }

// findLocked returns the index descriptor ref names, and whether ref named
// it by tag (rather than by digest).
func (s *Store) findLocked(ref string) (d v1.Descriptor, byName bool, err error) {
	ref = strings.TrimSpace(ref)
	if h, err := v1.NewHash(ref); err == nil {
		d, err := s.byDigestLocked(h.String(), "")
		return d, false, err
	}
	if digestPrefixRE.MatchString(ref) {
		if d, err := s.byNameLocked(ref); err == nil {
			return d, true, nil
		}
		d, err := s.byDigestPrefixLocked(strings.TrimPrefix(ref, "sha256:"))
		return d, false, err
	}
	norm, err := NormalizeRef(ref)
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	if i := strings.IndexByte(norm, '@'); i >= 0 {
		d, err := s.byDigestLocked(norm[i+1:], norm[:i])
		return d, false, err
	}
	d, err = s.byNameLocked(norm)
	return d, true, err
}

func (s *Store) byNameLocked(ref string) (v1.Descriptor, error) {
	norm, err := NormalizeRef(ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, d := range s.index.Manifests {
		if refOf(d) == norm {
			return d, nil
		}
	}
	if _, hasDomain := stripDomain(norm); hasDomain {
		return v1.Descriptor{}, ErrNotFound
	}
	norm = strings.TrimPrefix(norm, "library/") // Docker Hub's official images
	var found []v1.Descriptor
	for _, d := range s.index.Manifests {
		if short, ok := stripDomain(refOf(d)); ok && short == norm {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return v1.Descriptor{}, ErrNotFound
	case 1:
		return found[0], nil
	default:
		return v1.Descriptor{}, fmt.Errorf("%w: %s and %s", ErrAmbiguous, refOf(found[0]), refOf(found[1]))
	}
}

// byDigestLocked finds a descriptor with the digest; if repo is set, one
// whose name is in that repository (with or without registry host).
func (s *Store) byDigestLocked(dg, repo string) (v1.Descriptor, error) {
	for _, d := range s.sortedLocked() {
		if d.Digest.String() != dg {
			continue
		}
		if repo == "" {
			return d, nil
		}
		r := refOf(d)
		r = r[:strings.LastIndexByte(r, ':')]
		if short, _ := stripDomain(r); r == repo || short == repo {
			return d, nil
		}
	}
	return v1.Descriptor{}, ErrNotFound
}

func (s *Store) byDigestPrefixLocked(prefix string) (v1.Descriptor, error) {
	var found []v1.Descriptor
	for _, d := range s.sortedLocked() {
		if strings.HasPrefix(d.Digest.Hex, prefix) {
			if len(found) > 0 && found[0].Digest == d.Digest {
				continue
			}
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return v1.Descriptor{}, ErrNotFound
	case 1:
		return found[0], nil
	default:
		return v1.Descriptor{}, fmt.Errorf("%w: digest prefix %s matches %s and %s", ErrAmbiguous, prefix, found[0].Digest, found[1].Digest)
	}
}

// sortedLocked returns index descriptors sorted by name, so a digest lookup
// picks the same name every time.
func (s *Store) sortedLocked() []v1.Descriptor {
	ds := slices.Clone(s.index.Manifests)
	slices.SortFunc(ds, func(a, b v1.Descriptor) int { return strings.Compare(refOf(a), refOf(b)) })
	return ds
}

// imageLocked builds the Image for an index descriptor.
func (s *Store) imageLocked(d v1.Descriptor) (Image, error) {
	img, ok := s.cache[d.Digest.String()]
	if !ok {
		var err error
		img, err = s.loadImage(d.Digest)
		if err != nil {
			return Image{}, err
		}
		s.cache[d.Digest.String()] = img
	}
	img.Ref = refOf(d)
	img.Layers = slices.Clone(img.Layers)
	return img, nil
}

// loadImage reads and parses a manifest and its config from blobs.
func (s *Store) loadImage(h v1.Hash) (Image, error) {
	mb, err := s.readBlob(h)
	if err != nil {
		return Image{}, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(mb))
	if err != nil {
		return Image{}, fmt.Errorf("manifest %s: %w: %v", h, ErrCorrupt, err)
	}
	cb, err := s.readBlob(m.Config.Digest)
	if err != nil {
		return Image{}, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cb))
	if err != nil {
		return Image{}, fmt.Errorf("config %s: %w: %v", m.Config.Digest, ErrCorrupt, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return Image{}, fmt.Errorf("image %s: %w: %d layers but %d diffIDs", h, ErrCorrupt, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	img := Image{
		Digest:  h.String(),
		Size:    int64(len(mb)) + int64(len(cb)),
		Created: cfg.Created.Time,
		Config: Config{
			Entrypoint: cfg.Config.Entrypoint,
			Cmd:        cfg.Config.Cmd,
			Env:        cfg.Config.Env,
			WorkingDir: cfg.Config.WorkingDir,
			User:       cfg.Config.User,
		},
	}
	for i, l := range m.Layers {
		img.Size += l.Size
		img.Layers = append(img.Layers, Layer{
			Digest:    l.Digest.String(),
			DiffID:    cfg.RootFS.DiffIDs[i].String(),
			MediaType: string(l.MediaType),
			Size:      l.Size,
		})
	}
	return img, nil
}

// readBlob reads a small blob (manifest, config) and verifies its digest.
func (s *Store) readBlob(h v1.Hash) ([]byte, error) {
	p := s.blobPath(h)
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w: missing from %s", h, ErrCorrupt, p)
		}
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	got, _, _ := v1.SHA256(bytes.NewReader(b))
	if got != h {
		return nil, fmt.Errorf("blob %s: %w: %s has digest %s", h, ErrCorrupt, p, got)
	}
	return b, nil
}

// Remove removes the name ref (resolved as by Resolve; a digest removes
// every name of that image). Blobs stay until the next GC.
func (s *Store) Remove(ctx context.Context, ref string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, byName, err := s.findLocked(ref)
	if err != nil {
		return fmt.Errorf("remove image %q: %w", ref, err)
	}
	idx := s.index
	idx.Manifests = slices.DeleteFunc(slices.Clone(idx.Manifests), func(x v1.Descriptor) bool {
		if byName {
			return refOf(x) == refOf(d)
		}
		return x.Digest == d.Digest
	})
	if err := s.writeIndex(idx); err != nil {
		return fmt.Errorf("remove image %q: %w", ref, err)
	}
	s.index = idx
	s.log.Info("image removed", "ref", ref, "digest", d.Digest.String())
	return nil
}

// GC deletes every blob that no named image references, and leftover
// temporary files. It waits for running imports to finish.
func (s *Store) GC(ctx context.Context) (GCStats, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.mu.Lock()
	keep := map[string]bool{}
	for _, d := range s.index.Manifests {
		img, err := s.imageLocked(d)
		if err != nil {
			s.mu.Unlock()
			return GCStats{}, fmt.Errorf("image gc: %w", err)
		}
		keep[d.Digest.Hex] = true
		m, err := s.manifestLocked(d.Digest)
		if err != nil {
			s.mu.Unlock()
			return GCStats{}, fmt.Errorf("image gc: %w", err)
		}
		keep[m.Config.Digest.Hex] = true
		for _, l := range img.Layers {
			keep[strings.TrimPrefix(l.Digest, "sha256:")] = true
		}
	}
	for dg := range s.cache {
		if !keep[strings.TrimPrefix(dg, "sha256:")] {
			delete(s.cache, dg)
		}
	}
	s.mu.Unlock()

	var st GCStats
	ents, err := os.ReadDir(s.blobDir())
	if err != nil {
		return st, fmt.Errorf("image gc: %w", err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if keep[e.Name()] {
			continue
		}
		p := filepath.Join(s.blobDir(), e.Name())
		fi, err := e.Info()
		if err != nil {
			return st, fmt.Errorf("image gc: %w", err)
		}
		if err := os.Remove(p); err != nil {
			return st, fmt.Errorf("image gc: %w", err)
		}
		st.BlobsRemoved++
		st.BytesFreed += fi.Size()
	}
	s.log.Info("image gc", "blobs_removed", st.BlobsRemoved, "bytes_freed", st.BytesFreed)
	return st, nil
}

func (s *Store) manifestLocked(h v1.Hash) (*v1.Manifest, error) {
	mb, err := s.readBlob(h)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(mb))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w: %v", h, ErrCorrupt, err)
	}
	return m, nil
}

// writeIndex replaces index.json atomically.
func (s *Store) writeIndex(idx v1.IndexManifest) error {
	if idx.Manifests == nil {
		idx.Manifests = []v1.Descriptor{}
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFile(filepath.Join(s.root, indexFile), b, 0o644)
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
