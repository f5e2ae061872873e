package devices

import "errors"

// Sentinel errors of the base contract. Errors returned by the contract
// wrap these, also across the gRPC shim.
var (
	// ErrInvalidConfig: Configure refused the config.
	ErrInvalidConfig = errors.New("invalid plugin config")
	// ErrNotConfigured: a call that needs Configure came before it.
	ErrNotConfigured = errors.New("plugin not configured")
	// ErrUnknownDevice: no device with that ID.
	ErrUnknownDevice = errors.New("unknown device")
	// ErrClosed: the stream, handle or plugin was closed.
	ErrClosed = errors.New("closed")
	// ErrUnsupportedContract: the plugin and the host share no contract
	// version, or the plugin does not serve a class it was asked for.
	ErrUnsupportedContract = errors.New("unsupported plugin contract")
	// ErrChecksumMismatch: the plugin binary's SHA-256 is not the one the
	// board file pins.
	ErrChecksumMismatch = errors.New("plugin checksum mismatch")
	// ErrUnavailable: the device's plugin is not running (it crashed and
	// is being restarted, or keeps failing to start). The plugin host
	// (core/pluginhost) returns it; retry once the device is back.
	ErrUnavailable = errors.New("device unavailable")
)
