// Package rootfs owns the root file systems of berth's containers: image
// layers unpacked once into a shared, read-only directory each, and per
// container an overlayfs of those layers with its own upper (writable)
// directory.
//
// On disk, under the store's root:
//
//	layers/<hex>/            one unpacked layer, named by its diffID's hex
//	l/<hex[:16]>             short symlink to ../layers/<hex>, used in mount
//	                         options so many layers fit in one page
//	containers/<id>/layers.json   the diffIDs the container uses, bottom first
//	containers/<id>/{upper,work,merged}
//
// A layer is extracted into layers/.tmp-* and renamed into place only when
// complete and verified against its diffID, so a crash never leaves a half
// layer under its final name; leftovers are removed by Open.
package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/fsutil"
	"github.com/berth-io/berth/core/image"
)

// LayerOpener opens a layer's uncompressed tar stream; reading it to EOF
// verifies it. *image.Store implements it.
type LayerOpener interface {
	OpenLayer(ctx context.Context, l image.Layer) (io.ReadCloser, error)
}

// Rootfs is one container's root file system.
type Rootfs struct {
	ID     string
	Merged string   // overlay mount point, the container's root
	Upper  string   // the container's writable layer
	Layers []string // diffIDs, bottom to top, each once
}

// Store manages unpacked layers and container root file systems under one
// directory. It is safe for concurrent use; one process must own the
// directory.
type Store struct {
	root   string
	images LayerOpener
	log    *slog.Logger

	mu       sync.Mutex // guards inflight, container records, layer removal
	inflight map[string]*unpackCall

	unpacks atomic.Int64 // completed layer extractions, for tests and metrics
}

type unpackCall struct {
	done chan struct{}
	err  error
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

const (
	tmpPrefix   = ".tmp-"
	trashPrefix = ".trash-"
	shortLen    = 16
	recordFile  = "layers.json"
)

var (
	idRE  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.+-]{0,127}$`)
	hexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Open opens (creating if needed) the store at root. images supplies layer
// content. Temporary and half-deleted layers from a previous run are removed.
func Open(root string, images LayerOpener, opts ...Option) (*Store, error) {
	s := &Store{
		root:     root,
		images:   images,
		log:      slog.New(slog.DiscardHandler),
		inflight: map[string]*unpackCall{},
	}
	for _, o := range opts {
		o(s)
	}
	for _, d := range []string{"layers", "l", "containers"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("open rootfs store: %w", err)
		}
	}
	ents, err := os.ReadDir(s.layersDir())
	if err != nil {
		return nil, fmt.Errorf("open rootfs store: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) || strings.HasPrefix(e.Name(), trashPrefix) {
			if err := os.RemoveAll(filepath.Join(s.layersDir(), e.Name())); err != nil {
				return nil, fmt.Errorf("open rootfs store: %w", err)
			}
		}
	}
	return s, nil
}

func (s *Store) layersDir() string          { return filepath.Join(s.root, "layers") }
func (s *Store) layerDir(hex string) string { return filepath.Join(s.root, "layers", hex) }
func (s *Store) shortLink(hex string) string {
	return filepath.Join(s.root, "l", hex[:shortLen])
}
func (s *Store) containerDir(id string) string { return filepath.Join(s.root, "containers", id) }

// Unpacks returns how many layers this Store has extracted since Open.
func (s *Store) Unpacks() int64 { return s.unpacks.Load() }

// diffHex validates a diffID and returns its hex part.
func diffHex(diffID string) (string, error) {
	h, ok := strings.CutPrefix(diffID, "sha256:")
	if !ok || !hexRE.MatchString(h) {
		return "", fmt.Errorf("%w: diffID %q is not sha256:<64 hex>", ErrCorruptLayer, diffID)
	}
	return h, nil
}

// stackLayers lists the layers of images bottom to top. A layer that appears
// more than once is kept only at its highest position: its files win over
// the layers between anyway, and overlayfs refuses a directory twice.
func stackLayers(images []image.Image) ([]image.Layer, error) {
	var all []image.Layer
	for _, img := range images {
		all = append(all, img.Layers...)
	}
	top := map[string]int{}
	for i, l := range all {
		if _, err := diffHex(l.DiffID); err != nil {
			return nil, err
		}
		top[l.DiffID] = i
	}
	var out []image.Layer
	for i, l := range all {
		if top[l.DiffID] == i {
			out = append(out, l)
		}
	}
	return out, nil
}

// Unpack makes sure the layer is unpacked under layers/<hex>. Concurrent
// calls for one layer share one extraction. The layer is verified against
// its diffID before it is renamed into place.
func (s *Store) Unpack(ctx context.Context, l image.Layer) error {
	h, err := diffHex(l.DiffID)
	if err != nil {
		return err
	}
	for {
		s.mu.Lock()
		if _, err := os.Lstat(s.layerDir(h)); err == nil {
			s.mu.Unlock()
			return s.ensureShortLink(h)
		}
		c, busy := s.inflight[h]
		if !busy {
			c = &unpackCall{done: make(chan struct{})}
			s.inflight[h] = c
			s.mu.Unlock()
			c.err = s.extractLayer(ctx, l, h)
			s.mu.Lock()
			delete(s.inflight, h)
			s.mu.Unlock()
			close(c.done)
			return c.err
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
		}
		// The other caller's ctx may have ended; retry with ours.
		if c.err != nil && !errors.Is(c.err, context.Canceled) && !errors.Is(c.err, context.DeadlineExceeded) {
			return c.err
		}
	}
}

func (s *Store) extractLayer(ctx context.Context, l image.Layer, h string) error {
	tmp, err := os.MkdirTemp(s.layersDir(), tmpPrefix+h[:12]+"-")
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", l.DiffID, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("unpack layer %s: %w", l.DiffID, err)
	}
	rc, err := s.images.OpenLayer(ctx, l)
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", l.DiffID, err)
	}
	defer rc.Close()
	hs := sha256.New()
	tee := io.TeeReader(rc, hs)
	if err := Extract(ctx, tee, tmp); err != nil {
		return fmt.Errorf("unpack layer %s: %w", l.DiffID, err)
	}
	// Read past the tar end marker so the opener verifies the whole blob.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return fmt.Errorf("unpack layer %s: %w", l.DiffID, err)
	}
	if got := hex.EncodeToString(hs.Sum(nil)); got != h {
		return fmt.Errorf("unpack layer %s: %w: content has digest sha256:%s", l.DiffID, ErrCorruptLayer, got)
	}
	if err := syncFS(tmp); err != nil {
		return fmt.Errorf("unpack layer %s: %w", l.DiffID, err)
	}
	if err := os.Rename(tmp, s.layerDir(h)); err != nil {
		return fmt.Errorf("unpack layer %s: %w", l.DiffID, err)
	}
	ok = true
	s.unpacks.Add(1)
	s.log.Info("layer unpacked", "diff_id", l.DiffID)
	return s.ensureShortLink(h)
}

func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}

// ensureShortLink creates l/<hex[:16]> -> ../layers/<hex>, refusing a
// prefix collision.
func (s *Store) ensureShortLink(h string) error {
	want := filepath.Join("..", "layers", h)
	link := s.shortLink(h)
	got, err := os.Readlink(link)
	if err == nil {
		if got != want {
			return fmt.Errorf("layer sha256:%s: short link %s already points to %s", h, link, got)
		}
		return nil
	}
	if err := os.Symlink(want, link); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("layer sha256:%s: %w", h, err)
	}
	return nil
}

type record struct {
	Layers []string `json:"layers"`
}

// Prepare creates the root file system of container id from images, stacked
// bottom (images[0]) to top, each image's layers bottom to top. Missing
// layers are unpacked (verified). It records the layers the container uses,
// so GC keeps them, and creates upper, work and merged; it does not mount.
// Calling Prepare again with the same layers returns the existing Rootfs; with
// different layers it fails with ErrExists. On error nothing of a new
// container is left behind.
func (s *Store) Prepare(ctx context.Context, id string, images []image.Image) (*Rootfs, error) {
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("prepare rootfs %q: %w", id, ErrInvalidID)
	}
	layers, err := stackLayers(images)
	if err != nil {
		return nil, fmt.Errorf("prepare rootfs %s: %w", id, err)
	}
	rec := record{Layers: []string{}}
	for _, l := range layers {
		rec.Layers = append(rec.Layers, l.DiffID)
	}
	dir := s.containerDir(id)

	s.mu.Lock()
	old, err := s.readRecord(id)
	switch {
	case err == nil:
		s.mu.Unlock()
		if !slices.Equal(old.Layers, rec.Layers) {
			return nil, fmt.Errorf("prepare rootfs %s: %w with other layers", id, ErrExists)
		}
	case errors.Is(err, ErrNotFound):
		err = os.MkdirAll(dir, 0o700)
		if err == nil {
			err = writeRecord(filepath.Join(dir, recordFile), rec)
		}
		s.mu.Unlock()
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("prepare rootfs %s: %w", id, err)
		}
	default:
		s.mu.Unlock()
		return nil, fmt.Errorf("prepare rootfs %s: %w", id, err)
	}

	fail := func(err error) (*Rootfs, error) {
		if old.Layers == nil {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("prepare rootfs %s: %w", id, err)
	}
	for _, l := range layers {
		if err := s.Unpack(ctx, l); err != nil {
			return fail(err)
		}
	}
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fail(err)
		}
	}
	return s.rootfs(id, rec), nil
}

func (s *Store) rootfs(id string, rec record) *Rootfs {
	dir := s.containerDir(id)
	return &Rootfs{
		ID:     id,
		Merged: filepath.Join(dir, "merged"),
		Upper:  filepath.Join(dir, "upper"),
		Layers: slices.Clone(rec.Layers),
	}
}

// Get returns a prepared container's Rootfs (e.g. to re-adopt it after a
// daemon restart), or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*Rootfs, error) {
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("get rootfs %q: %w", id, ErrInvalidID)
	}
	rec, err := s.readRecord(id)
	if err != nil {
		return nil, fmt.Errorf("get rootfs %s: %w", id, err)
	}
	return s.rootfs(id, rec), nil
}

// List returns the ids of prepared containers.
func (s *Store) List(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "containers"))
	if err != nil {
		return nil, fmt.Errorf("list rootfs: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if idRE.MatchString(e.Name()) {
			if _, err := s.readRecord(e.Name()); err == nil {
				ids = append(ids, e.Name())
			}
		}
	}
	return ids, nil
}

func (s *Store) readRecord(id string) (record, error) {
	b, err := os.ReadFile(filepath.Join(s.containerDir(id), recordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return record{}, ErrNotFound
	}
	if err != nil {
		return record{}, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		// Torn by a power cut (records are not synced): Prepare writes
		// it again.
		s.log.Warn("unreadable rootfs record; treating the container as new", "container", id, "err", err)
		return record{}, ErrNotFound
	}
	return r, nil
}

// Mount mounts container id's overlay at its merged directory and returns
// that path. Mounting a mounted rootfs is a no-op. Layers missing from disk
// (e.g. removed by hand) are an error; Prepare again to restore them.
func (s *Store) Mount(ctx context.Context, id string) (string, error) {
	rf, err := s.Get(ctx, id)
	if err != nil {
		return "", fmt.Errorf("mount rootfs: %w", err)
	}
	if mounted, err := isMounted(rf.Merged); err != nil {
		return "", fmt.Errorf("mount rootfs %s: %w", id, err)
	} else if mounted {
		return rf.Merged, nil
	}
	var lower []string
	for i := len(rf.Layers) - 1; i >= 0; i-- {
		h, err := diffHex(rf.Layers[i])
		if err != nil {
			return "", fmt.Errorf("mount rootfs %s: %w", id, err)
		}
		if _, err := os.Stat(s.layerDir(h)); err != nil {
			return "", fmt.Errorf("mount rootfs %s: layer %s: %w", id, rf.Layers[i], err)
		}
		if err := s.ensureShortLink(h); err != nil {
			return "", fmt.Errorf("mount rootfs %s: %w", id, err)
		}
		lower = append(lower, s.shortLink(h))
	}
	if len(lower) == 0 {
		empty := filepath.Join(s.root, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return "", fmt.Errorf("mount rootfs %s: %w", id, err)
		}
		lower = []string{empty}
	}
	dir := s.containerDir(id)
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s",
		strings.Join(lower, ":"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if len(data) >= os.Getpagesize() {
		return "", fmt.Errorf("mount rootfs %s: %w: %d layers need %d bytes of options, limit %d", id, ErrTooManyLayers, len(lower), len(data), os.Getpagesize()-1)
	}
	if err := unix.Mount("overlay", rf.Merged, "overlay", 0, data); err != nil {
		return "", fmt.Errorf("mount rootfs %s: overlay at %s: %w", id, rf.Merged, err)
	}
	s.log.Debug("rootfs mounted", "id", id, "merged", rf.Merged, "layers", len(lower))
	return rf.Merged, nil
}

// isMounted reports whether p is a mount point (its device differs from its
// parent's).
func isMounted(p string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(p), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev, nil
}

// Unmount unmounts container id's overlay. Unmounting an unmounted (or
// unknown) rootfs is a no-op.
func (s *Store) Unmount(ctx context.Context, id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("unmount rootfs %q: %w", id, ErrInvalidID)
	}
	merged := filepath.Join(s.containerDir(id), "merged")
	for {
		mounted, err := isMounted(merged)
		if errors.Is(err, fs.ErrNotExist) || err == nil && !mounted {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount rootfs %s: %w", id, err)
		}
		// Loop: the same point may have been mounted more than once.
		if err := unix.Unmount(merged, 0); err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("unmount rootfs %s: %w", id, err)
		}
	}
}

// Remove unmounts container id's rootfs and deletes its directories,
// including its upper layer. Removing an unknown id is a no-op. The layers
// stay until GC.
func (s *Store) Remove(ctx context.Context, id string) error {
	if err := s.Unmount(ctx, id); err != nil {
		return fmt.Errorf("remove rootfs: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.RemoveAll(s.containerDir(id)); err != nil {
		return fmt.Errorf("remove rootfs %s: %w", id, err)
	}
	return nil
}

// GC removes unpacked layers that no prepared container uses and for which
// keep returns false (keep may be nil). It returns how many it removed.
func (s *Store) GC(ctx context.Context, keep func(diffID string) bool) (int, error) {
	s.mu.Lock()
	used := map[string]bool{}
	ids, err := s.List(ctx)
	if err != nil {
		s.mu.Unlock()
		return 0, fmt.Errorf("rootfs gc: %w", err)
	}
	for _, id := range ids {
		rec, err := s.readRecord(id)
		if err != nil {
			s.mu.Unlock()
			return 0, fmt.Errorf("rootfs gc: %w", err)
		}
		for _, d := range rec.Layers {
			used[d] = true
		}
	}
	ents, err := os.ReadDir(s.layersDir())
	if err != nil {
		s.mu.Unlock()
		return 0, fmt.Errorf("rootfs gc: %w", err)
	}
	var trash []string
	for _, e := range ents {
		h := e.Name()
		if !hexRE.MatchString(h) || s.inflight[h] != nil {
			continue
		}
		d := "sha256:" + h
		if used[d] || keep != nil && keep(d) {
			continue
		}
		t := filepath.Join(s.layersDir(), trashPrefix+h)
		if err := os.Rename(s.layerDir(h), t); err != nil {
			s.mu.Unlock()
			return len(trash), fmt.Errorf("rootfs gc: %w", err)
		}
		os.Remove(s.shortLink(h))
		trash = append(trash, t)
	}
	s.mu.Unlock()
	for _, t := range trash {
		if err := os.RemoveAll(t); err != nil {
			return len(trash), fmt.Errorf("rootfs gc: %w", err)
		}
	}
	if len(trash) > 0 {
		s.log.Info("rootfs gc", "layers_removed", len(trash))
	}
	return len(trash), nil
}

// Usage is the disk space the store uses, counted in allocated blocks with
// hard links counted once.
type Usage struct {
	Layers     int   // unpacked layers
	LayerBytes int64 // all unpacked layers
	Containers int   // prepared containers
	UpperBytes int64 // all containers' upper dirs
	PerUpper   map[string]int64
}

// Usage walks the store and reports the space it uses.
func (s *Store) Usage(ctx context.Context) (Usage, error) {
	u := Usage{PerUpper: map[string]int64{}}
	seen := map[[2]uint64]bool{}
	ents, err := os.ReadDir(s.layersDir())
	if err != nil {
		return u, fmt.Errorf("rootfs usage: %w", err)
	}
	for _, e := range ents {
		if !hexRE.MatchString(e.Name()) {
			continue
		}
		n, err := DiskUsage(ctx, s.layerDir(e.Name()), seen)
		if err != nil {
			return u, fmt.Errorf("rootfs usage: %w", err)
		}
		u.Layers++
		u.LayerBytes += n
	}
	ids, err := s.List(ctx)
	if err != nil {
		return u, fmt.Errorf("rootfs usage: %w", err)
	}
	for _, id := range ids {
		n, err := DiskUsage(ctx, filepath.Join(s.containerDir(id), "upper"), seen)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return u, fmt.Errorf("rootfs usage: %w", err)
		}
		u.Containers++
		u.UpperBytes += n
		u.PerUpper[id] = n
	}
	return u, nil
}

// DiskUsage sums the blocks allocated under dir, counting each inode once:
// inodes already in seen (device, inode) are skipped, and the ones counted
// are added to it, so one seen map shared across calls counts hard links
// and shared layers once.
func DiskUsage(ctx context.Context, dir string, seen map[[2]uint64]bool) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		k := [2]uint64{st.Dev, st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		total += st.Blocks * 512
		return nil
	})
	return total, err
}

// writeRecord writes a container's record, private to root. It replaces
// the file atomically but does not sync it: a record lost in a power cut is
// written again by the next Prepare (see readRecord), and an fsync under
// s.mu would serialise the starts of a whole stack.
func writeRecord(p string, rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return fsutil.ReplaceFile(p, b, 0o600)
}
