package socketcan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/plugins/internal/canplugin"
)

// port is one raw CAN socket on an interface: a canplugin.Port. Like any
// raw CAN socket it receives what other sockets on the interface send
// (the kernel's local loopback) but not its own frames.
type port struct {
	p      *Plugin
	dev    string
	ifname string
	fd     bool
	f      *os.File
	done   chan struct{}
}

// rcvBufBytes is the receive buffer asked for each socket: the kernel
// accounts about 1 KiB per queued frame, so it holds some 8,000 frames,
// nearly a second of a saturated 1 Mbit/s bus.
const rcvBufBytes = 8 << 20

// dialPort opens and binds a raw CAN socket on ifname, with error frames
// enabled and, for fd, CAN FD frames.
func (p *Plugin) dialPort(dev, ifname string, fd bool, deliver canplugin.Deliver) (*port, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	s, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.CAN_RAW)
	if err != nil {
		return nil, fmt.Errorf("raw CAN socket: %w", err)
	}
	fail := func(op string, err error) (*port, error) {
		unix.Close(s)
		return nil, fmt.Errorf("%s on %s: %w", op, ifname, err)
	}
	if err := unix.SetsockoptInt(s, unix.SOL_CAN_RAW, unix.CAN_RAW_ERR_FILTER, unix.CAN_ERR_MASK); err != nil {
		return fail("enable error frames", err)
	}
	// The kernel drops, silently, what does not fit the socket's receive
	// buffer: make it hold a burst of a busy bus. FORCE passes the
	// net.core.rmem_max cap where the plugin has CAP_NET_ADMIN.
	if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBufBytes) != nil {
		unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBufBytes)
	}
	if fd {
		if err := unix.SetsockoptInt(s, unix.SOL_CAN_RAW, unix.CAN_RAW_FD_FRAMES, 1); err != nil {
			return fail("enable CAN FD frames", err)
		}
	}
	if err := unix.Bind(s, &unix.SockaddrCAN{Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	pt := &port{p: p, dev: dev, ifname: ifname, fd: fd, f: os.NewFile(uintptr(s), "can:"+ifname), done: make(chan struct{})}
	go pt.readLoop(deliver)
	return pt, nil
}

// readLoop reads frames until the socket is closed or fails, stamping
// each with the time it was read. An interface going down is not a
// failure: the kernel reports it once (ENETDOWN) and the socket carries
// frames again when the interface is up.
func (pt *port) readLoop(deliver canplugin.Deliver) {
	defer close(pt.done)
	buf := make([]byte, fdMTU)
	for {
		n, err := pt.f.Read(buf)
		if errors.Is(err, unix.ENETDOWN) {
			// The interface went down. The socket stays bound and reads
			// again once it is up. Report the link as it is now: this
			// read may come late, after the link watcher saw it up again.
			st, err := linkState(pt.ifname)
			if err != nil {
				st = can.StateStopped
			}
			pt.p.setHealth(pt.dev, st, "interface "+pt.ifname+" is down")
			continue
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				pt.p.log.Error("read CAN socket", "interface", pt.ifname, "error", err)
				pt.p.setHealth(pt.dev, can.StateStopped, err.Error())
			}
			return
		}
		f, err := decodeFrame(buf[:n])
		if err != nil {
			pt.p.log.Warn("dropping a frame the kernel gave", "interface", pt.ifname, "error", err)
			continue
		}
		f.Timestamp = time.Now()
		if f.Error {
			pt.p.errorFrame(pt.dev, f)
		}
		deliver(0, f)
	}
}

// Send writes f to the socket. A full transmit queue (ENOBUFS) is retried
// until ctx ends; a bus-off or down interface is refused.
func (pt *port) Send(ctx context.Context, f can.Frame) error {
	b := encodeFrame(f)
	for {
		_, err := pt.f.Write(b)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.ENOBUFS):
			select {
			case <-ctx.Done():
				return fmt.Errorf("transmit queue of %s full: %w", pt.ifname, ctx.Err())
			case <-time.After(time.Millisecond):
			}
			continue
		case errors.Is(err, unix.ENETDOWN):
			if st, _ := linkState(pt.ifname); st == can.StateBusOff {
				return fmt.Errorf("%s: %w", pt.ifname, can.ErrBusOff)
			}
			return fmt.Errorf("%s: %w", pt.ifname, can.ErrBusStopped)
		}
		return fmt.Errorf("write %s: %w", pt.ifname, err)
	}
}

// State reads the controller state from netlink.
func (pt *port) State(context.Context) (can.State, error) { return linkState(pt.ifname) }

// Close closes the socket and waits for the read loop to end.
func (pt *port) Close() error {
	err := pt.f.Close()
	<-pt.done
	return err
}
