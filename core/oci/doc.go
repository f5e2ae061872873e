// Package oci owns how berth talks to an OCI runtime: it writes the runtime
// spec (config.json) each container runs with, wraps the runc/crun command
// line, and selects a runtime that really works on the host.
//
// The package holds no global state. A Runtime is a value naming a binary
// and its --root state directory; every call runs the binary once and
// returns the runtime's own error message, wrapped, when it fails.
package oci
