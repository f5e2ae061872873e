package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/core/board"
	"github.com/berth-io/berth/core/broker"
	"github.com/berth-io/berth/core/playbook"
	"github.com/berth-io/berth/core/pluginhost"
	"github.com/berth-io/berth/core/stack"
	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/canwire"
)

// The plugin host is the broker's opener in berthd.
var (
	_ broker.Opener = (*pluginhost.Host)(nil)
	_ broker.Waiter = (*pluginhost.Host)(nil)
)

// operatorContainer is the name the broker's statistics give sessions of
// the operator CAN socket (`berth can`).
const operatorContainer = "berth can"

// deviceManager is berthd's side of the board: the device plugins (through
// pluginhost), the broker that enforces grants, the operator CAN socket, and
// one device socket per container that holds CAN grants. With no board file
// it holds nothing, and a playbook with grants is refused at plan time.
type deviceManager struct {
	board  *board.Board // nil without --board
	host   *pluginhost.Host
	broker *broker.Broker
	dir    string // RUN-DIR/devices: one folder per container
	log    *slog.Logger
	life   context.Context
	// native serves the grants that ask for native = true, where it can;
	// set once at open, after the network manager gives its instance.
	native *nativeCAN

	mu      sync.Mutex
	sockets map[string]*deviceSocket // by container ID
}

// deviceSocket is one container's device socket and the grants it serves.
type deviceSocket struct {
	dir    string
	grants map[string]broker.Grant
	stop   context.CancelFunc
	done   chan struct{}
}

// openDevices loads the board file and starts its plugins; with no board
// file it returns a manager that has no devices.
func openDevices(ctx, life context.Context, cfg Config) (*deviceManager, error) {
	m := &deviceManager{dir: filepath.Join(cfg.RunDir, "devices"), log: cfg.Log, life: life, sockets: map[string]*deviceSocket{}}
	if cfg.Board == "" {
		return m, nil
	}
	b, diags := board.Load(cfg.Board)
	if diags.HasErrors() {
		return nil, fmt.Errorf("board file:\n%s", formatDiags(diags, cfg.Board))
	}
	host, err := pluginhost.Start(ctx, b, pluginhost.WithLogger(cfg.Log), pluginhost.WithPluginDirs(cfg.PluginDirs...))
	if err != nil {
		var pe *pluginhost.PluginError
		if errors.As(err, &pe) && len(pe.Diags) > 0 {
			return nil, fmt.Errorf("board %s: plugin %q:\n%s", cfg.Board, pe.Plugin, formatDiags(pe.Diagnostics(), cfg.Board))
		}
		return nil, fmt.Errorf("board %s: %w", cfg.Board, err)
	}
	m.board, m.host = b, host
	m.broker = broker.New(host, broker.WithLogger(cfg.Log))
	names := make([]string, len(b.Devices))
	for i, d := range b.Devices {
		names[i] = d.Name
	}
	cfg.Log.Info("board ready", "board", b.Name, "file", cfg.Board, "devices", strings.Join(names, ","))
	return m, nil
}

// formatDiags renders diagnostics against the board file they point into.
func formatDiags(diags hcl.Diagnostics, path string) string {
	var b strings.Builder
	sources := map[string][]byte{}
	if src, err := os.ReadFile(path); err == nil {
		sources[path] = src
	}
	playbook.WriteDiagnostics(&b, diags, sources, 100, false)
	return strings.TrimRight(b.String(), "\n")
}

// close ends every device socket and the operator socket's sessions, then
// the broker and the plugins. Containers keep running: their sessions end
// and their programs reconnect to the next berthd.
func (m *deviceManager) close() {
	m.mu.Lock()
	socks := m.sockets
	m.sockets = map[string]*deviceSocket{}
	m.mu.Unlock()
	for _, s := range socks {
		s.stop()
		<-s.done
	}
	if m.broker != nil {
		m.broker.Close()
	}
	if m.host != nil {
		m.host.Close()
	}
}

// check reports the grants of a playbook that this berthd's board cannot
// serve, with their place in the playbook.
func (m *deviceManager) check(pb *playbook.Playbook) hcl.Diagnostics {
	if m.board != nil {
		return playbook.CheckBoard(pb.Stack, m.board)
	}
	var diags hcl.Diagnostics
	for _, c := range pb.Stack.Containers {
		for _, g := range c.Grants {
			if g.CAN == nil {
				continue
			}
			r := g.DeclRange
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "No board",
				Detail:   fmt.Sprintf("Container %q holds the %s grant %q, but berthd runs without a board file, so it has no devices. Start berthd with --board FILE (e.g. board-support/sim/board.hcl), or remove the grant.", c.Name, g.Class, g.Name),
				Subject:  &r,
			})
		}
	}
	return diags
}

// canGrants returns the container's CAN grants by name.
func canGrants(c *playbook.Container) map[string]broker.Grant {
	gs := map[string]broker.Grant{}
	for _, g := range c.Grants {
		if g.CAN != nil {
			gs[g.Name] = *g.CAN
		}
	}
	return gs
}

// serve makes sure the container's device socket is served with the
// spec's grants but those served natively and returns its folder, to be
// mounted at oci.DeviceDirPath; it returns "" for a container without such
// grants. Calling it again for
// the same container (a restart, an adoption) keeps the socket.
func (m *deviceManager) serve(s *stack.Spec) (string, error) {
	grants := canGrants(s.Container)
	for name := range m.native.served(s.ID()) {
		delete(grants, name) // a kernel interface in the container serves it
	}
	if len(grants) == 0 {
		return "", nil
	}
	if m.broker == nil {
		return "", fmt.Errorf("container %s holds CAN grants, but berthd runs without a board file: start berthd with --board FILE", s.Container.Name)
	}
	id := s.ID()
	m.mu.Lock()
	defer m.mu.Unlock()
	if sock, ok := m.sockets[id]; ok {
		sock.grants = grants
		return sock.dir, nil
	}
	dir := filepath.Join(m.dir, s.Stack.Name, s.Container.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("device socket: %w", err)
	}
	// The folder is reachable only through RUN-DIR (0700) on the host and
	// through this container's own mount inside it, so the socket may be
	// open to every user of the container.
	l, err := api.ListenPacket(filepath.Join(dir, filepath.Base(canwire.DefaultSocket)), 0o666, -1)
	if err != nil {
		return "", fmt.Errorf("device socket of container %s: %w", s.Container.Name, err)
	}
	ctx, stop := context.WithCancel(m.life)
	sock := &deviceSocket{dir: dir, grants: grants, stop: stop, done: make(chan struct{})}
	container := s.Stack.Name + "/" + s.Container.Name // as berth ps names it
	open := func(ctx context.Context, name string) (can.Bus, error) {
		m.mu.Lock()
		g, ok := sock.grants[name]
		names := slices.Sorted(maps.Keys(sock.grants))
		m.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("container %s has no CAN grant %q (it holds %s): %w", container, name, strings.Join(names, ", "), canwire.ErrUnknownGrant)
		}
		return m.broker.Open(ctx, container, g)
	}
	go func() {
		defer close(sock.done)
		if err := canwire.Serve(ctx, l, open, canwire.WithLogger(m.log.With("container", id))); err != nil {
			m.log.Error("device socket stopped", "container", id, "err", err)
		}
	}()
	m.sockets[id] = sock
	m.log.Debug("device socket ready", "container", id, "path", l.Addr().String())
	return dir, nil
}

// remove ends the container's device socket and its sessions and removes
// its folder.
func (m *deviceManager) remove(s *stack.Spec) error {
	m.mu.Lock()
	sock, ok := m.sockets[s.ID()]
	delete(m.sockets, s.ID())
	m.mu.Unlock()
	if ok {
		sock.stop()
		<-sock.done
	}
	dir := filepath.Join(m.dir, s.Stack.Name, s.Container.Name)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove device socket: %w", err)
	}
	os.Remove(filepath.Dir(dir)) // the stack's folder, once empty
	return nil
}

// serveOperator serves the operator CAN socket beside the API socket until
// ctx ends: a session there names a board CAN device and may receive and
// send every ID, FD and error frames included.
func (m *deviceManager) serveOperator(ctx context.Context, l net.Listener) error {
	open := func(ctx context.Context, device string) (can.Bus, error) {
		if m.broker == nil {
			return nil, fmt.Errorf("berthd runs without a board file, so it has no bus %q: start berthd with --board FILE (e.g. board-support/sim/board.hcl): %w", device, can.ErrUnknownDevice)
		}
		if d := m.board.Device(device); d == nil || d.Class != devices.ClassCAN {
			return nil, fmt.Errorf("board %s has no CAN device %q (it has %s): %w", m.board.Name, device, m.canDevices(), can.ErrUnknownDevice)
		}
		g := broker.Grant{
			Name: device, Device: device,
			Receive: broker.Filters{broker.AnyID()}, Send: broker.Filters{broker.AnyID()},
			FD: true, ErrorFrames: true,
		}
		return m.broker.Open(ctx, operatorContainer, g)
	}
	return canwire.Serve(ctx, l, open, canwire.WithLogger(m.log.With("socket", "operator")))
}

func (m *deviceManager) canDevices() string {
	var names []string
	for _, d := range m.board.Devices {
		if d.Class == devices.ClassCAN {
			names = append(names, d.Name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// countersTimeout bounds how long `berth devices` waits for a plugin's
// counters; a plugin that does not answer in time is shown without them.
const countersTimeout = 2 * time.Second

// devices is `berth devices`: the plugin host's view of each board device
// with the plugin's counters and the broker's sessions on it.
func (m *deviceManager) devices(ctx context.Context) api.Devices {
	if m.board == nil {
		return api.Devices{}
	}
	sessions := map[string][]api.DeviceSession{}
	for _, totals := range []map[string][]broker.SessionStats{m.native.sessions(), m.broker.Totals()} {
		for device, rows := range totals {
			for _, s := range rows {
				sessions[device] = append(sessions[device], api.DeviceSession{
					Container: s.Container, Grant: s.Grant, Open: s.Open,
					Received: s.Received, Delivered: s.Delivered, Dropped: s.Dropped,
					Sent: s.Sent, Refused: s.Refused, RateLimited: s.RateLimited,
				})
			}
		}
	}
	out := api.Devices{Board: m.board.Name}
	ctx, cancel := context.WithTimeout(ctx, countersTimeout)
	defer cancel()
	counters := m.host.Counters(ctx)
	for _, d := range m.host.Devices() {
		out.Devices = append(out.Devices, api.Device{
			Name: d.Name, Class: string(d.Class), Plugin: d.Plugin, ID: d.ID,
			Available: d.Available, Health: d.Health.String(), Reason: d.Reason, Restarts: d.Restarts,
			Attributes: d.Attributes, Counters: counters[d.Name], Sessions: sessions[d.Name],
		})
	}
	return out
}
