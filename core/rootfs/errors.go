package rootfs

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrUnsafeEntry: a layer tar entry would write outside the layer
	// directory (a "../" path, a hard link out of the layer, a path through a
	// symlink that leaves it) or is a device node.
	ErrUnsafeEntry = errors.New("unsafe layer entry")
	// ErrCorruptLayer: a layer's content does not match its diffID, or the
	// tar stream is malformed.
	ErrCorruptLayer = errors.New("corrupt layer")
	// ErrNotFound: no container rootfs with that id.
	ErrNotFound = errors.New("rootfs not found")
	// ErrExists: a container rootfs with that id exists with other layers.
	ErrExists = errors.New("rootfs exists")
	// ErrInvalidID: a container id that cannot be a directory name.
	ErrInvalidID = errors.New("invalid container id")
	// ErrTooManyLayers: the overlay mount options exceed one page.
	ErrTooManyLayers = errors.New("too many layers for one overlay mount")
)
