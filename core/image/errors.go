package image

import "errors"

// Sentinel errors. Every error the Store returns that callers may want to
// branch on wraps one of these; test with errors.Is.
var (
	// ErrNotFound: no image carries the given name or digest.
	ErrNotFound = errors.New("image not found")
	// ErrAmbiguous: a short name or digest prefix matches more than one image.
	ErrAmbiguous = errors.New("ambiguous image reference")
	// ErrInvalidRef: the string is not a valid image reference.
	ErrInvalidRef = errors.New("invalid image reference")
	// ErrCorrupt: a blob's content does not match its digest (or a layer's
	// uncompressed content its diffID), a blob is truncated or missing, or a
	// manifest or config cannot be parsed.
	ErrCorrupt = errors.New("corrupt image content")
	// ErrUnsupportedArchive: the file is neither an OCI archive nor a
	// docker-save archive, or uses a feature the store does not handle.
	ErrUnsupportedArchive = errors.New("unsupported image archive")
	// ErrUnsupportedMediaType: a layer's media type (e.g. zstd) cannot be
	// decompressed by this store.
	ErrUnsupportedMediaType = errors.New("unsupported layer media type")
)
