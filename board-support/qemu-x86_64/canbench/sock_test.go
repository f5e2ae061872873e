package canbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/network"
)

// conn is one end of a path: a raw CAN socket or a canwire client. Both
// carry Linux's 16-byte struct can_frame records, one per Read and Write.
type conn interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
}

// The IDs the bench sends. Grants take dataID and markerID, not foreignID.
const (
	dataID    = 0x123 // sequence number and send time in the data
	markerID  = 0x1FF // no data; sent until the reader has one (sync)
	foreignID = 0x321 // outside every grant: must never arrive
	recordLen = 16    // sizeof(struct can_frame)
)

// record is a classical frame as a can_frame record: ID id, data seq and
// sent (little-endian) when withData, else empty.
func record(id uint32, withData bool, seq, sent uint32) []byte {
	b := make([]byte, recordLen)
	binary.LittleEndian.PutUint32(b, id)
	if withData {
		b[4] = 8
		binary.LittleEndian.PutUint32(b[8:], seq)
		binary.LittleEndian.PutUint32(b[12:], sent)
	}
	return b
}

// tick is the unit of a frame's send time: 100 ns since the phase began
// (a uint32 lasts 429 s).
const tick = 100 * time.Nanosecond

// dialRaw opens a raw CAN socket bound to ifname in the network namespace
// at ns ("" for this process's), with a receive buffer of 1 MiB so that a
// throughput window of frames fits. The caller closes it. (core/cannative's
// tests have a poll-based twin; this one uses Go's poller, as
// einride's socketcan.Dial does, to have deadlines.)
func dialRaw(ns, ifname string) (*os.File, error) {
	var f *os.File
	err := network.InNetNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.CAN_RAW)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		f = os.NewFile(uintptr(fd), "can:"+ifname) // registers fd with the poller: it is non-blocking
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20); err != nil {
			return fmt.Errorf("SO_RCVBUFFORCE: %w", err)
		}
		return unix.Bind(fd, &unix.SockaddrCAN{Ifindex: ifi.Index})
	})
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("raw CAN socket on %s: %w", ifname, err)
	}
	return f, nil
}

// write sends one record on c, retrying for at most a second while the
// socket's send buffer is full (ENOBUFS: a raw CAN socket does not block).
func write(c conn, b []byte) error {
	deadline := time.Now().Add(time.Second)
	for {
		_, err := c.Write(b)
		if errors.Is(err, unix.ENOBUFS) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Microsecond)
			continue
		}
		return err
	}
}
