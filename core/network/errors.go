package network

import "errors"

// Sentinel errors. Operations wrap them with %w and a message that says what
// to change; test with errors.Is.
var (
	// ErrInvalidName: a stack, network or container name is empty or holds a
	// character that cannot be written to the state directory.
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidSubnet: a subnet is not IPv4 or is too small to hold a
	// gateway and one container (smaller than /30).
	ErrInvalidSubnet = errors.New("invalid subnet")
	// ErrSubnetOverlap: a subnet overlaps a route or address already on the
	// host.
	ErrSubnetOverlap = errors.New("subnet overlaps the host's routes")
	// ErrSubnetInUse: a subnet overlaps another berth network's subnet.
	ErrSubnetInUse = errors.New("subnet used by another berth network")
	// ErrSubnetChanged: a network's subnet was changed while containers are
	// still attached to it.
	ErrSubnetChanged = errors.New("subnet changed while containers are attached")
	// ErrPoolExhausted: no subnet of the allocation pool is free.
	ErrPoolExhausted = errors.New("subnet pool exhausted")
	// ErrSubnetFull: a network has no free address left.
	ErrSubnetFull = errors.New("no free address in subnet")
	// ErrUnknownNetwork: a container names a network that EnsureNetwork has
	// not created for its stack.
	ErrUnknownNetwork = errors.New("unknown network")
	// ErrLinkNotOwned: a host link has the name berth would use but is
	// marked as another berth instance's or someone else's, so berth leaves
	// it alone.
	ErrLinkNotOwned = errors.New("link not owned by this berth instance")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("network manager closed")
)
