package oci

import "errors"

var (
	// ErrNotExist is returned (wrapped) when the runtime does not know the
	// container id.
	ErrNotExist = errors.New("container does not exist")
	// ErrNoRuntime is returned (wrapped) when no runtime binary is found or
	// none of the candidates can run a container on this host.
	ErrNoRuntime = errors.New("no usable OCI runtime")
	// ErrInvalidSpec is returned (wrapped) when SpecOptions are unusable.
	ErrInvalidSpec = errors.New("invalid spec options")
)
