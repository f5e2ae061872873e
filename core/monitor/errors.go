package monitor

import "errors"

var (
	// ErrStartFailed is returned (wrapped, with the runtime's message) when
	// the runtime could not create or start the container.
	ErrStartFailed = errors.New("container start failed")
	// ErrNoMonitor is returned (wrapped) by Attach when the directory has
	// neither a live monitor nor an exit status.
	ErrNoMonitor = errors.New("no monitor and no exit status")
	// ErrMonitorLost is returned (wrapped) by Wait when the monitor ended
	// without recording an exit status (it was killed); the container may
	// still run.
	ErrMonitorLost = errors.New("monitor ended without an exit status")
	// ErrInvalidConfig is returned (wrapped) for an unusable Config.
	ErrInvalidConfig = errors.New("invalid monitor config")
)
