// Package monitor owns the per-container monitor: a small detached process
// (cmd/berth-monitor) that creates and starts one container through the OCI
// runtime, holds the container's stdout and stderr, writes them to rotated
// log files, reaps the container's init and records its exit status.
// Containers therefore outlive berthd: a berthd killed with SIGKILL stops no
// container, and a restarted berthd re-adopts each one with Attach.
//
// berthd's side is Start, Attach, Handle and ReadLogs; the monitor's side is
// Main. They share only the files in the container's monitor directory:
//
//	monitor.json   the Config the monitor runs with (written by Start)
//	monitor.pid    the monitor's pid
//	container.pid  the container init's pid (written by the runtime)
//	exit.json      the ExitStatus, written once all output is logged
//	monitor.log    the monitor's own diagnostics
//	log/current.log, log/current.log.1 ... the container's output
//
// A log line is "<RFC3339Nano UTC> <stdout|stderr> <text>".
package monitor
