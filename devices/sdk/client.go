package sdk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
)

// Client is a running plugin process and the contracts it serves. The
// caller owns it and must Kill it.
type Client struct {
	// Path is the plugin binary.
	Path string
	// Version is the negotiated contract version.
	Version int
	// Info is what the plugin said about itself at start.
	Info devices.Info
	// Base is the plugin's base contract.
	Base devices.Plugin
	// CAN is the plugin's CAN class; nil when the plugin drives no CAN.
	CAN can.Driver

	pc *plugin.Client
}

// Kill ends the plugin process and waits for it to exit (go-plugin first
// asks it to stop, then kills it). Open buses and streams fail afterwards.
// Safe to call twice.
func (c *Client) Kill() { c.pc.Kill() }

// Pid returns the plugin process's ID (0 if it has not started).
func (c *Client) Pid() int {
	if rc := c.pc.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Exited reports whether the plugin process has exited.
func (c *Client) Exited() bool { return c.pc.Exited() }

type launchConfig struct {
	sha256       string
	logger       hclog.Logger
	args         []string
	startTimeout time.Duration
}

// LaunchOption configures [Launch].
type LaunchOption func(*launchConfig)

// WithSHA256 pins the plugin binary's SHA-256, as the board file does (hex,
// case-insensitive). Launch refuses a binary with another sum.
func WithSHA256(sum string) LaunchOption {
	return func(c *launchConfig) { c.sha256 = strings.ToLower(strings.TrimSpace(sum)) }
}

// WithLogger sets the logger the plugin's log lines are re-logged to (under
// the binary's name, as a sub-logger). Default: a null logger.
func WithLogger(l hclog.Logger) LaunchOption { return func(c *launchConfig) { c.logger = l } }

// WithArgs passes arguments to the plugin binary.
func WithArgs(args ...string) LaunchOption { return func(c *launchConfig) { c.args = args } }

// WithStartTimeout bounds how long the plugin may take to start when ctx
// has no deadline (default 30s).
func WithStartTimeout(d time.Duration) LaunchOption {
	return func(c *launchConfig) { c.startTimeout = d }
}

// FileSHA256 returns the hex SHA-256 of the file at path, as the board
// file pins it (`sha256sum` prints the same).
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("checksum %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("checksum %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Launch starts the plugin binary at path, negotiates the contract
// version, asks the plugin who it is and returns its clients. With
// [WithSHA256] it first refuses a binary whose sum differs, with an error
// wrapping devices.ErrChecksumMismatch that names the binary and both sums
// (go-plugin's SecureConfig checks it again right before exec). A plugin
// that shares no contract version with the host, or whose Info lists a
// device class the negotiated version does not know, is refused with
// devices.ErrUnsupportedContract.
// ctx bounds the start; the process outlives it.
func Launch(ctx context.Context, path string, opts ...LaunchOption) (*Client, error) {
	cfg := launchConfig{logger: hclog.NewNullLogger(), startTimeout: 30 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	name := filepath.Base(path)
	fail := func(err error) error { return fmt.Errorf("launch plugin %s: %w", path, err) }
	if err := ctx.Err(); err != nil {
		return nil, fail(err)
	}
	var secure *plugin.SecureConfig
	if cfg.sha256 != "" {
		want, err := hex.DecodeString(cfg.sha256)
		if err != nil || len(want) != sha256.Size {
			return nil, fail(fmt.Errorf("%w: pinned sha256 %q is not 64 hex digits", devices.ErrChecksumMismatch, cfg.sha256))
		}
		got, err := FileSHA256(path)
		if err != nil {
			return nil, fail(err)
		}
		if got != cfg.sha256 {
			return nil, fail(fmt.Errorf("%w: the board pins sha256 %s but %s has sha256 %s; rebuild or reinstall the plugin, or update the pinned sum",
				devices.ErrChecksumMismatch, cfg.sha256, name, got))
		}
		secure = &plugin.SecureConfig{Checksum: want, Hash: sha256.New()}
	}
	timeout := cfg.startTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	cmd := exec.Command(path, cfg.args...)
	// The plugin dies with its host: a host killed with -9 (berthd can be)
	// leaves no plugin behind to hold the device.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: hostSet(),
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           cfg.logger,
		StartTimeout:     timeout,
	})
	c, err := dispense(ctx, pc)
	if err != nil {
		pc.Kill()
		return nil, fail(err)
	}
	c.Path = path
	return c, nil
}

func dispense(ctx context.Context, pc *plugin.Client) (*Client, error) {
	rpc, err := pc.Client()
	if err != nil {
		if err == plugin.ErrChecksumsDoNotMatch {
			return nil, fmt.Errorf("%w: the binary changed after it was checked", devices.ErrChecksumMismatch)
		}
		return nil, err
	}
	c := &Client{pc: pc, Version: pc.NegotiatedVersion()}
	if !slices.Contains(Versions, c.Version) {
		return nil, fmt.Errorf("%w: negotiated version %d", devices.ErrUnsupportedContract, c.Version)
	}
	raw, err := rpc.Dispense(devices.PluginName)
	if err != nil {
		return nil, err
	}
	c.Base = raw.(devices.Plugin)
	if c.Info, err = c.Base.Info(ctx); err != nil {
		return nil, err
	}
	if !slices.Contains(c.Info.ContractVersions, c.Version) {
		return nil, fmt.Errorf("%w: plugin %s serves contract versions %v, negotiated %d",
			devices.ErrUnsupportedContract, c.Info.Name, c.Info.ContractVersions, c.Version)
	}
	for _, cl := range c.Info.Classes {
		switch cl {
		case devices.ClassCAN:
			raw, err := rpc.Dispense(can.PluginName)
			if err != nil {
				return nil, err
			}
			c.CAN = raw.(can.Driver)
		default:
			return nil, fmt.Errorf("%w: plugin %s drives device class %q, which contract version %d does not know",
				devices.ErrUnsupportedContract, c.Info.Name, cl, c.Version)
		}
	}
	return c, nil
}
