package pluginhost

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Sentinel errors of the plugin host. A device whose plugin is down gives
// devices.ErrUnavailable (retry after [Host.Wait]). Errors from the
// plugins themselves keep their own sentinels (devices.ErrChecksumMismatch,
// devices.ErrUnsupportedContract, devices.ErrInvalidConfig, can.Err…).
var (
	// ErrPluginNotFound: the plugin binary the board names does not
	// exist where the board says, in a plugin directory or in $PATH.
	ErrPluginNotFound = errors.New("plugin binary not found")
	// ErrWrongClass: the device is not of the class the call is for
	// (Open on a device that is not CAN).
	ErrWrongClass = errors.New("wrong device class")
	// ErrClassNotDriven: the board gives a plugin a device of a class
	// the plugin does not drive.
	ErrClassNotDriven = errors.New("plugin does not drive the device class")
)

// PluginError is a plugin that could not be started, pointing at the
// board file line that is the cause or the place to fix it (the path, the
// sha256 pin, a device's class, the config block). Unwrap gives the cause
// (ErrPluginNotFound, devices.ErrChecksumMismatch, …).
type PluginError struct {
	// Plugin is the board's name for the plugin.
	Plugin string
	// Subject is where in the board file.
	Subject hcl.Range
	// Diags holds the config diagnostics when the plugin's config block
	// did not match its schema; nil otherwise.
	Diags hcl.Diagnostics
	Err   error
}

func (e *PluginError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: plugin %q: %v", pos(e.Subject), e.Plugin, e.Err)
	for _, d := range e.Diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		where := "?"
		if d.Subject != nil {
			where = pos(*d.Subject)
		}
		fmt.Fprintf(&b, "\n  %s: %s; %s", where, d.Summary, d.Detail)
	}
	return b.String()
}

func (e *PluginError) Unwrap() error { return e.Err }

// Diagnostics returns the error as HCL diagnostics, for rendering with
// the board file's source: the config diagnostics, or one diagnostic at
// Subject.
func (e *PluginError) Diagnostics() hcl.Diagnostics {
	if len(e.Diags) > 0 {
		return e.Diags
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Cannot start plugin %q", e.Plugin),
		Detail:   e.Err.Error(),
		Subject:  e.Subject.Ptr(),
	}}
}

// pos renders a range's start as file:line:col.
func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
