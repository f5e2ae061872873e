// Package devices owns the base contract every berth device plugin speaks,
// whatever device classes it drives: who it is ([Info]), what config it
// takes ([Plugin.ConfigSchema], as data), its configuration, a streamed
// fingerprint of the devices it drives, and per-device stats.
//
// The contract is plain Go with no protobuf in it. Its go-plugin gRPC shim
// sits beside it (plugin.go, client.go, server.go; wire form in proto/).
// Each device class has its own package (devices/can, and later i2c, spi,
// gps, modem) with its own small interface and shim; devices/sdk ties the
// base contract and the classes together into a plugin binary (Serve) and
// a host-side client (Launch).
package devices

import (
	"context"
	"fmt"
	"time"

	"github.com/zclconf/go-cty/cty"

	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

// ContractVersion is the version of the plugin contract (the base contract
// and every class contract together) this package speaks. It is negotiated
// at plugin start as go-plugin's protocol version: a plugin lists the
// versions it serves in [Info.ContractVersions], and the host picks the
// highest one both know.
const ContractVersion = 1

// Class names a device class.
type Class string

// The device classes. Only [ClassCAN] has a contract so far.
const (
	ClassCAN   Class = "can"
	ClassI2C   Class = "i2c"
	ClassSPI   Class = "spi"
	ClassGPS   Class = "gps"
	ClassModem Class = "modem"
)

// Info says who a plugin is.
type Info struct {
	// Name is the plugin's name, e.g. "socketcan"; it names the plugin in
	// berthd's log and in `berth devices`.
	Name string
	// Version is the plugin's own version, free form ("1.2.0").
	Version string
	// Classes are the device classes the plugin drives.
	Classes []Class
	// ContractVersions are the versions of this contract the plugin
	// serves (see [ContractVersion]).
	ContractVersions []int
}

// Drives reports whether the plugin drives devices of class c.
func (i Info) Drives(c Class) bool {
	for _, x := range i.Classes {
		if x == c {
			return true
		}
	}
	return false
}

// Health is a device's health as its plugin sees it.
type Health int

// The health values. The zero value is HealthUnknown.
const (
	HealthUnknown Health = iota
	HealthHealthy
	HealthUnhealthy
)

// String returns "unknown", "healthy" or "unhealthy".
func (h Health) String() string {
	switch h {
	case HealthHealthy:
		return "healthy"
	case HealthUnhealthy:
		return "unhealthy"
	case HealthUnknown:
		return "unknown"
	}
	return fmt.Sprintf("Health(%d)", int(h))
}

// Device is one device a plugin drives.
type Device struct {
	// ID is stable across plugin restarts and hot-plug: the board file
	// names devices by it (e.g. "can0").
	ID string
	// Class is the device's class.
	Class Class
	// Health is the device's health; HealthReason says why when it is
	// not healthy ("bus-off", "interface can1 removed").
	Health       Health
	HealthReason string
	// Attributes describe the device for people and for the host
	// ("bitrate" = "500000", "fd" = "true"). They are informative: no
	// contract depends on them.
	Attributes map[string]string
}

// Fingerprint is the complete set of devices a plugin drives at one moment.
// Every fingerprint replaces the previous one: a device missing from it is
// gone.
type Fingerprint struct {
	Devices []Device
}

// FingerprintStream delivers fingerprints: the first one as soon as the
// plugin knows its devices, then a new one on every change (hot-plug,
// failure, recovery).
type FingerprintStream interface {
	// Recv blocks until the next fingerprint. It returns
	// context.Canceled (or the ctx's other error) once the ctx the stream
	// was opened with ends, and [ErrClosed] if the plugin stopped
	// fingerprinting.
	Recv() (Fingerprint, error)
}

// DeviceStats are one device's counters at one moment.
type DeviceStats struct {
	ID string
	// Counters are monotonic counters named by the device class; the CAN
	// class uses the names in devices/can (rx_frames, tx_frames, errors,
	// drops).
	Counters map[string]uint64
	// Time is when the counters were read.
	Time time.Time
}

// Plugin is the base contract every device plugin implements, beside the
// contract of each class it drives.
//
// The host calls Info first, then ConfigSchema, checks the board file's
// config for the plugin against the schema (so the user gets HCL
// diagnostics with line numbers, and the plugin never sees a config of the
// wrong shape), calls Configure once, and only then opens devices or calls
// Fingerprint and Stats.
type Plugin interface {
	// Info says who the plugin is. It must work before Configure.
	Info(ctx context.Context) (Info, error)
	// ConfigSchema returns the schema of the plugin's config block in the
	// board file; nil means the plugin takes no config. It must work
	// before Configure.
	ConfigSchema(ctx context.Context) (*hclschemas.Body, error)
	// Configure hands the plugin its config: a cty object conforming to
	// the schema (cty.NilVal or a null value when the board gives none).
	// A config the plugin cannot use is refused with an error wrapping
	// [ErrInvalidConfig].
	Configure(ctx context.Context, config cty.Value) error
	// Fingerprint starts a stream of fingerprints that ends when ctx ends.
	Fingerprint(ctx context.Context) (FingerprintStream, error)
	// Stats returns the counters of every device the plugin drives.
	Stats(ctx context.Context) ([]DeviceStats, error)
}
