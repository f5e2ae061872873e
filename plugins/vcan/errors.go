package vcan

import "errors"

var (
	// ErrRefused: the hub refused to join a bus, e.g. because the bus
	// already runs in the other mode (classical or FD) on that hub.
	ErrRefused = errors.New("vcan hub refused the bus")

	// errProtocol: a peer sent something that is not the hub protocol.
	errProtocol = errors.New("vcan hub protocol error")
)
