package playbook

import "errors"

// Sentinel errors returned by the value parsers; callers test them with
// errors.Is.
var (
	// ErrInvalidSize is returned by ParseSize for a malformed or negative size.
	ErrInvalidSize = errors.New("invalid size")
	// ErrInvalidDuration is returned by ParseDuration for a malformed or
	// negative duration.
	ErrInvalidDuration = errors.New("invalid duration")
	// ErrUnknownSignal is returned by ParseSignal for a name that is not a
	// signal.
	ErrUnknownSignal = errors.New("unknown signal")
)
