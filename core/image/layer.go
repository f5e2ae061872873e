package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// OpenLayer returns the layer's uncompressed tar stream. The compression
// (gzip or none) is detected from the blob's content; zstd is refused with
// ErrUnsupportedMediaType. Reading the stream to EOF verifies the blob's
// digest and size and the uncompressed content's diffID: on a mismatch the
// final Read returns an error wrapping ErrCorrupt that names the digest and
// the blob file. The caller must Close the stream. Reads fail once ctx ends.
func (s *Store) OpenLayer(ctx context.Context, l Layer) (io.ReadCloser, error) {
	dg, err := v1.NewHash(l.Digest)
	if err != nil {
		return nil, fmt.Errorf("open layer %q: %w: %v", l.Digest, ErrInvalidRef, err)
	}
	diffID, err := v1.NewHash(l.DiffID)
	if err != nil {
		return nil, fmt.Errorf("open layer %s: diffID %q: %w: %v", l.Digest, l.DiffID, ErrInvalidRef, err)
	}
	p := s.blobPath(dg)
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open layer %s: %w: blob %s missing", l.Digest, ErrNotFound, p)
		}
		return nil, fmt.Errorf("open layer %s: %w", l.Digest, err)
	}
	magic := make([]byte, 4)
	n, _ := f.ReadAt(magic, 0)
	magic = magic[:n]

	v := &verifyingLayer{ctx: ctx, f: f, path: p, digest: dg, diffID: diffID, size: l.Size, ch: sha256.New(), uh: sha256.New()}
	v.cr = &countingReader{r: io.TeeReader(f, v.ch)}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(v.cr)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("open layer %s: %w: %s: gzip: %v", l.Digest, ErrCorrupt, p, err)
		}
		v.zr = zr
		v.r = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		f.Close()
		return nil, fmt.Errorf("open layer %s: %w: zstd (%s)", l.Digest, ErrUnsupportedMediaType, l.MediaType)
	default:
		v.r = v.cr
	}
	return v, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type verifyingLayer struct {
	ctx            context.Context
	f              *os.File
	path           string
	digest, diffID v1.Hash
	size           int64
	cr             *countingReader
	zr             *gzip.Reader
	r              io.Reader
	ch, uh         hash.Hash
	done           bool
	err            error
}

func (v *verifyingLayer) Read(p []byte) (int, error) {
	if v.done {
		return 0, v.errOrEOF()
	}
	if err := v.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := v.r.Read(p)
	v.uh.Write(p[:n])
	if err == io.EOF {
		v.done = true
		v.err = v.verify()
		return n, v.errOrEOF()
	}
	if err != nil {
		err = fmt.Errorf("read layer %s: %w: %s: %v", v.digest, ErrCorrupt, v.path, err)
	}
	return n, err
}

func (v *verifyingLayer) errOrEOF() error {
	if v.err != nil {
		return v.err
	}
	return io.EOF
}

// verify drains what is left of the blob and checks both digests.
func (v *verifyingLayer) verify() error {
	if _, err := io.Copy(io.Discard, v.cr); err != nil {
		return fmt.Errorf("read layer %s: %w", v.digest, err)
	}
	if v.size > 0 && v.cr.n != v.size {
		return fmt.Errorf("layer %s: %w: %s is %d bytes, want %d", v.digest, ErrCorrupt, v.path, v.cr.n, v.size)
	}
	if got := hex.EncodeToString(v.ch.Sum(nil)); got != v.digest.Hex {
		return fmt.Errorf("layer %s: %w: %s has digest sha256:%s", v.digest, ErrCorrupt, v.path, got)
	}
	if got := hex.EncodeToString(v.uh.Sum(nil)); got != v.diffID.Hex {
		return fmt.Errorf("layer %s: %w: %s uncompresses to sha256:%s, want diffID %s", v.digest, ErrCorrupt, v.path, got, v.diffID)
	}
	return nil
}

// Close releases the blob file. It does not verify; read to EOF for that.
func (v *verifyingLayer) Close() error {
	if v.zr != nil {
		v.zr.Close()
	}
	return v.f.Close()
}
