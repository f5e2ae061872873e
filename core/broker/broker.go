// Package broker owns the enforcement of CAN grants and the multiplexing
// of container sessions onto device plugins: for each board device in use
// it holds one plugin bus and one receive stream, fans the stream out to
// every session whose grant's receive filter matches, checks each send
// against the session's grant (ID, frame format, rate) before it reaches
// the plugin, sends what the device's sessions queued meanwhile in one
// can.SendBatch per plugin round trip (sender.go), and resumes every
// session by itself when the plugin comes
// back after a crash. A session ([Broker.Open]) is itself a can.Bus, so
// the device socket server (devices/can/canwire) serves it unchanged.
//
// A session behaves like a socket on a kernel CAN interface, narrowed to
// its grant:
//   - it receives the frames its receive filter selects, from the plugin
//     and from the device's other sessions (the broker loops a session's
//     sent frames back to the others, since the one plugin handle does not
//     hear itself), in one order per device; error frames only with
//     Grant.ErrorFrames, FD frames only with Grant.FD;
//   - a reader that falls behind loses only its own newest frames,
//     counted; the plugin stream and other sessions never wait for it;
//   - Send refuses malformed frames (can.ErrInvalidFrame family), IDs
//     outside the send list ([ErrPermissionDenied], naming container and
//     grant), and FD frames without Grant.FD; over the send rate it
//     blocks until the session's token bucket has a token, or fails with
//     [ErrRateLimited] when its ctx ends first;
//   - when the plugin goes away, Send and State fail with
//     [ErrUnavailable] and streams pause; the broker waits for the device
//     ([Waiter]), reopens it and resubscribes, and the same sessions and
//     streams carry on.
//
// Grants are [Grant] values; their ID filters are written as strings and
// read with [ParseFilter]. [Broker.Totals] is what `berth devices` shows
// about sessions; [Broker.Stats] is the devices and sessions open now.
package broker

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/berth-io/berth/devices/can"
)

// Opener opens a board device's CAN bus by its board name;
// pluginhost.Host is one. The broker owns and closes the buses it opens.
// A bus whose plugin went away fails with errors wrapping
// devices.ErrUnavailable; the broker then closes it and opens the
// device again.
type Opener interface {
	Open(ctx context.Context, device string) (can.Bus, error)
}

// Waiter is an optional interface of an [Opener]: Wait blocks until the
// device can be opened again after a failure (its plugin is back and
// healthy), or ctx ends. pluginhost.Host is one. Without it the broker
// retries Open with back-off.
type Waiter interface {
	Wait(ctx context.Context, device string) error
}

type config struct {
	log      *slog.Logger
	depth    int
	clock    Clock
	retryMin time.Duration
	retryMax time.Duration
}

// Option configures [New].
type Option func(*config)

// WithLogger sets the logger (default: discard). The broker logs a
// device going down (Warn) and coming back (Info), and sessions opening
// and closing (Debug).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithDepth sets how many received frames each session buffers per
// stream before its reader loses frames (default can.DefaultDepth).
func WithDepth(n int) Option { return func(c *config) { c.depth = n } }

// WithClock sets the clock the send rate limiter runs on (default: the
// real one).
func WithClock(cl Clock) Option { return func(c *config) { c.clock = cl } }

// WithRetry sets the back-off between attempts to reopen a failed device
// (default 100ms doubling up to 5s). With a [Waiter] the broker waits for
// the device first and backs off only when opening still fails.
func WithRetry(min, max time.Duration) Option {
	return func(c *config) { c.retryMin, c.retryMax = min, max }
}

// Broker multiplexes container sessions onto plugin buses. Its methods are
// safe for concurrent use.
type Broker struct {
	opener Opener
	cfg    config
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	devices map[string]*device
	closed  bool
	// ended sums the counters of the sessions that closed, for Totals.
	ended Tally
}

// New returns a broker that opens devices through opener. It opens
// nothing until the first session; Close releases what it opened.
func New(opener Opener, opts ...Option) *Broker {
	cfg := config{
		log:      slog.New(slog.DiscardHandler),
		depth:    can.DefaultDepth,
		clock:    realClock{},
		retryMin: 100 * time.Millisecond,
		retryMax: 5 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Broker{opener: opener, cfg: cfg, ctx: ctx, cancel: cancel, devices: make(map[string]*device), ended: Tally{}}
}

// Open opens a session for container on grant g's device and returns it
// as a can.Bus; the caller closes it (canwire's server does, when the
// container hangs up). The session receives only the frames g's receive
// filter selects, and other sessions' sends on the same device (not its
// own), like a socket on a kernel CAN interface; it sends only what g
// allows; see the methods of the returned bus for the refusals.
//
// The first session on a device opens the device through the Opener with
// ctx, so Open fails as the Opener does (can.ErrUnknownDevice,
// devices.ErrUnavailable while its plugin is down, ...); later
// sessions share the open device and fail only for a bad grant
// ([ErrInvalidGrant]) or a closed broker (can.ErrClosed). Once open, a
// session outlives plugin restarts: see [ErrUnavailable].
func (b *Broker) Open(ctx context.Context, container string, g Grant) (can.Bus, error) {
	if container == "" {
		return nil, fmt.Errorf("open %s: %w: no container named", g.Device, ErrInvalidGrant)
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("open %s for container %s: %w", g.Device, container, err)
	}
	d, err := b.attach(ctx, g.Device)
	if err != nil {
		return nil, fmt.Errorf("open %s for container %s, grant %q: %w", g.Device, container, g.Name, err)
	}
	s := newSession(d, container, g)
	d.add(s)
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed { // Close ran while the device was opening
		_ = s.Close()
		return nil, fmt.Errorf("open %s for container %s, grant %q: broker: %w", g.Device, container, g.Name, can.ErrClosed)
	}
	b.cfg.log.Debug("broker session open", "device", d.name, "container", container, "grant", g.Name)
	return s, nil
}

// attach returns the device name with one more reference, opening it if
// no session holds it yet.
func (b *Broker) attach(ctx context.Context, name string) (*device, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, fmt.Errorf("broker: %w", can.ErrClosed)
	}
	d := b.devices[name]
	if d != nil {
		d.refs++
		b.mu.Unlock()
		select {
		case <-d.ready:
		case <-ctx.Done():
			b.release(d)
			return nil, ctx.Err()
		}
		if d.startErr != nil {
			b.release(d)
			return nil, d.startErr
		}
		return d, nil
	}
	d = newDevice(b, name)
	d.refs = 1
	b.devices[name] = d
	b.mu.Unlock()

	err := d.start(ctx)
	if err != nil {
		b.mu.Lock()
		if b.devices[name] == d {
			delete(b.devices, name)
		}
		b.mu.Unlock()
		d.startErr = err
	}
	close(d.ready)
	if err != nil {
		b.release(d)
		return nil, err
	}
	return d, nil
}

// release drops a reference to d and stops it with the last one.
func (b *Broker) release(d *device) {
	b.mu.Lock()
	d.refs--
	last := d.refs == 0
	if last && b.devices[d.name] == d {
		delete(b.devices, d.name)
	}
	b.mu.Unlock()
	if last {
		d.stop()
	}
}

// Close closes every session (their streams end with can.ErrClosed) and
// every plugin bus the broker opened. Open fails afterwards. Safe to call
// twice; it returns nil.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var sessions []*session
	for _, d := range b.devices {
		d.mu.Lock()
		sessions = append(sessions, d.sessions...)
		d.mu.Unlock()
	}
	b.mu.Unlock()
	for _, s := range sessions {
		_ = s.Close()
	}
	b.cancel()
	return nil
}

// DeviceStats is one device the broker holds open, for `berth devices`.
type DeviceStats struct {
	// Device is the board device name; Mode the plugin bus's mode.
	Device string
	Mode   can.Mode
	// Available is whether the plugin bus is up; Reason says why not.
	Available bool
	Reason    string
	// Reopens counts how often the broker reopened the device after its
	// plugin bus failed.
	Reopens int
	// FramesIn are frames received from the plugin; FramesSent are frames
	// the sessions sent through it.
	FramesIn, FramesSent uint64
	// Sessions are the open sessions, in the order they opened.
	Sessions []SessionStats
}

// SessionStats is one session's traffic, or in [Broker.Totals] one
// container grant's, summed over its sessions.
type SessionStats struct {
	// Container and Grant say whose session it is.
	Container, Grant string
	// Open is how many of its sessions are open: 1 in Stats; in Totals
	// 0 once every one closed.
	Open int
	// Received are frames its receive filter selected (from the plugin
	// and from other sessions); Delivered those its streams returned to
	// the container; Dropped those its streams lost because the
	// container read too slowly.
	Received, Delivered, Dropped uint64
	// Sent are frames it sent; Refused sends the grant or frame
	// validation refused; RateLimited sends whose ctx ended while they
	// waited for the send rate.
	Sent, Refused, RateLimited uint64
}

// Stats returns every open device with its sessions, by device name.
func (b *Broker) Stats() []DeviceStats {
	b.mu.Lock()
	devs := make([]*device, 0, len(b.devices))
	for _, d := range b.devices {
		devs = append(devs, d)
	}
	b.mu.Unlock()
	out := make([]DeviceStats, 0, len(devs))
	for _, d := range devs {
		select {
		case <-d.ready:
		default:
			continue // still opening
		}
		if d.startErr == nil {
			out = append(out, d.stats())
		}
	}
	slices.SortFunc(out, func(a, b DeviceStats) int { return cmp.Compare(a.Device, b.Device) })
	return out
}
