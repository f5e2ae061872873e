package cannative

import "errors"

// Sentinel errors. Operations wrap them with %w and a message that says
// where (bus, netns, grant) and what to change; test with errors.Is.
var (
	// ErrUnsupported: the kernel lacks vxcan or can-gw (or runs can-gw
	// with too few hops); the grant has to be served through the broker.
	ErrUnsupported = errors.New("native CAN not supported by this kernel")
	// ErrNotNative: the grant asks for something the kernel cannot enforce
	// (a send rate); it has to be served through the broker.
	ErrNotNative = errors.New("grant cannot be served natively")
	// ErrInvalidAttachment: an attachment is not well formed (an illegal
	// interface name, no namespace, a bad instance identity, a bus that is
	// not a CAN interface).
	ErrInvalidAttachment = errors.New("invalid native CAN attachment")
	// ErrLinkNotOwned: a host link has the name berth would use but is
	// marked as another berth instance's or someone else's, so berth leaves
	// it alone.
	ErrLinkNotOwned = errors.New("link not owned by this berth instance")
	// ErrNoLink: Adopt found no host link for the attachment (the
	// container's namespace, or the link, is gone); attach it again.
	ErrNoLink = errors.New("no native CAN link to adopt")
)
