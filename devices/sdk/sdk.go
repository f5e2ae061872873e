// Package sdk is the berth device plugin SDK: [Serve] turns a plugin's
// implementations of the base contract and its device classes into a
// plugin binary, and [Launch] is the host side that starts such a binary
// (checking its SHA-256), negotiates the contract version and hands back
// the clients. Both use hashicorp/go-plugin over gRPC; nothing else in a
// plugin needs to know that.
package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/zclconf/go-cty/cty"
	"google.golang.org/grpc"

	"github.com/berth-io/berth/core/exepages"
	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
)

// Handshake is the go-plugin handshake berth and its plugins share. The
// magic cookie only tells a plugin binary run by hand that it is not being
// run by berthd; it is not a secret. The protocol version is ignored:
// versions are negotiated from [Versions].
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  devices.ContractVersion,
	MagicCookieKey:   "BERTH_DEVICE_PLUGIN",
	MagicCookieValue: "b6c1f1f0-berth-device-plugin",
}

// Versions are the contract versions this SDK speaks, oldest first.
var Versions = []int{devices.ContractVersion}

// Plugin is what a plugin binary serves: the base contract, and the
// implementation of each device class it drives (nil for the classes it
// does not drive). The classes set here must match Info's Classes.
type Plugin struct {
	Base devices.Plugin
	CAN  can.Driver
}

// ErrNoBase: Serve was given no base contract implementation.
var ErrNoBase = errors.New("plugin has no base contract implementation")

// PluginSet returns the go-plugin plugin set that serves p: the base
// contract and each class p implements. [Serve] uses it; so do in-process
// tests (plugin.TestPluginGRPCConn).
func PluginSet(p Plugin) plugin.PluginSet {
	set := plugin.PluginSet{devices.PluginName: basePlugin(p.Base)}
	if p.CAN != nil {
		set[can.PluginName] = canPlugin(p.CAN)
	}
	return set
}

// hostSet is the plugin set the host dispenses from.
func hostSet() map[int]plugin.PluginSet {
	out := make(map[int]plugin.PluginSet, len(Versions))
	for _, v := range Versions {
		out[v] = plugin.PluginSet{
			devices.PluginName: basePlugin(nil),
			can.PluginName:     canPlugin(nil),
		}
	}
	return out
}

// grpcPlugin is go-plugin's glue for one contract: register serves it on
// the plugin side, dial makes its client on the host side.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	register func(*grpc.Server)
	dial     func(*grpc.ClientConn) any
}

var _ plugin.GRPCPlugin = (*grpcPlugin)(nil)

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	p.register(s)
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return p.dial(c), nil
}

// basePlugin is the base contract's glue, served by impl (nil on the host).
func basePlugin(impl devices.Plugin) *grpcPlugin {
	return &grpcPlugin{
		register: func(s *grpc.Server) { devices.RegisterServer(s, impl) },
		dial:     func(c *grpc.ClientConn) any { return devices.NewClient(c) },
	}
}

// canPlugin is the CAN class's glue, served by impl (nil on the host).
func canPlugin(impl can.Driver) *grpcPlugin {
	return &grpcPlugin{
		register: func(s *grpc.Server) { can.RegisterServer(s, impl) },
		dial:     func(c *grpc.ClientConn) any { return can.NewClient(c) },
	}
}

// NewLogger returns the logger a plugin should log with: JSON lines on
// stderr, which the host's go-plugin client reads and re-logs, at the same
// level, in berthd's log under the plugin binary's name.
func NewLogger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      hclog.Trace,
		Output:     os.Stderr,
		JSONFormat: true,
	})
}

// Serve serves p until the host ends the plugin; call it from main. Run by
// hand (not by berthd), the binary prints a short notice and exits 1, as
// every go-plugin plugin does. Serve returns an error only for a Plugin it
// cannot serve.
//
// Serve keeps a plugin small and quick, as an ECU needs:
//   - Unless the plugin's environment sets GOMAXPROCS, it runs Go code on
//     one CPU at a time (runtime.GOMAXPROCS(1)): a plugin moves frames
//     between sockets, and with one P the hand-offs between its
//     goroutines wake no other thread. Measured on a 2-core host: 20–25 %
//     more frames/s between the host and a vcan plugin, fewer threads.
//   - Once Configure has succeeded, on Linux, it unmaps the binary's code
//     and read-only data pages the process mapped to start (they stay in
//     the page cache; what runs again is mapped back on use). Most of an
//     idle plugin's resident set is such pages: about 12 of 15 MiB for
//     the vcan plugin, 5 after.
func Serve(p Plugin, logger hclog.Logger) error {
	if p.Base == nil {
		return fmt.Errorf("serve plugin: %w", ErrNoBase)
	}
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(1)
	}
	if logger == nil {
		logger = NewLogger("plugin")
	}
	p.Base = releaseAfterConfigure{Plugin: p.Base, log: logger}
	sets := make(map[int]plugin.PluginSet, len(Versions))
	for _, v := range Versions {
		sets[v] = PluginSet(p)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: sets,
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger:           logger,
	})
	return nil
}

// releaseAfterConfigure releases the start-up pages (exepages.Release)
// each time the plugin's Configure succeeds: the plugin is up then.
type releaseAfterConfigure struct {
	devices.Plugin
	log hclog.Logger
}

func (r releaseAfterConfigure) Configure(ctx context.Context, v cty.Value) error {
	if err := r.Plugin.Configure(ctx, v); err != nil {
		return err
	}
	if err := exepages.Release(); err != nil {
		r.log.Debug("keeping start-up pages", "error", err)
	}
	return nil
}
