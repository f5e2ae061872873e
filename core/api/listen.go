package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DefaultSocket is where berthd listens and berth connects unless told otherwise.
const DefaultSocket = "/run/berth/berthd.sock"

// Listen creates the unix socket berthd serves the API on. mode is the
// socket file's permission bits (0 means 0600: root only); gid, when not
// negative, is the group the socket is given, so that group's members can
// use berth with mode 0660.
//
// The socket never exists with wider permissions than mode: it is bound in
// a private directory next to socketPath and renamed into place. A socket
// file already at socketPath is replaced only if nothing answers on it;
// if a server answers, Listen fails with ErrAlreadyExists. Any other kind
// of file there is left alone and Listen fails.
//
// Closing the returned listener removes the socket file.
func Listen(socketPath string, mode os.FileMode, gid int) (net.Listener, error) {
	return listen("unix", socketPath, mode, gid)
}

// ListenPacket is Listen for a SOCK_SEQPACKET socket ("unixpacket"), such as
// the CAN device sockets berthd serves with canwire.
func ListenPacket(socketPath string, mode os.FileMode, gid int) (net.Listener, error) {
	return listen("unixpacket", socketPath, mode, gid)
}

func listen(network, socketPath string, mode os.FileMode, gid int) (net.Listener, error) {
	if mode == 0 {
		mode = 0o600
	}
	dir := filepath.Dir(socketPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("listen %s: %w", socketPath, err)
	}
	if err := clearStaleSocket(network, socketPath); err != nil {
		return nil, fmt.Errorf("listen %s: %w", socketPath, err)
	}

	tmpDir, err := os.MkdirTemp(dir, ".berthd-sock-")
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", socketPath, err)
	}
	defer os.RemoveAll(tmpDir)
	tmpPath := filepath.Join(tmpDir, "s")

	// Bind through the folder's /proc/self/fd link: a short path, so a
	// socket deep in a long RUN-DIR still fits sun_path (108 bytes).
	d, err := os.Open(tmpDir)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", socketPath, err)
	}
	defer d.Close()
	bindPath := fmt.Sprintf("/proc/self/fd/%d/s", d.Fd())
	l, err := net.ListenUnix(network, &net.UnixAddr{Name: bindPath, Net: network})
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", socketPath, err)
	}
	// The path changes under it; unixListener removes the final one.
	l.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		l.Close()
		return nil, fmt.Errorf("listen %s: %w", socketPath, err)
	}
	if err := os.Chmod(tmpPath, mode.Perm()); err != nil {
		return fail(err)
	}
	if gid >= 0 {
		if err := os.Chown(tmpPath, -1, gid); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmpPath, socketPath); err != nil {
		return fail(err)
	}
	return &unixListener{UnixListener: l, path: socketPath}, nil
}

// clearStaleSocket removes a socket file nobody answers on.
func clearStaleSocket(network, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket: %w", path, ErrAlreadyExists)
	}
	c, err := net.DialTimeout(network, path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("another server answers on %s: %w", path, ErrAlreadyExists)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

type unixListener struct {
	*net.UnixListener
	path  string
	once  sync.Once
	close error
}

// Close stops listening and removes the socket file; calling it again
// returns the first call's result and touches nothing.
func (l *unixListener) Close() error {
	l.once.Do(func() {
		l.close = l.UnixListener.Close()
		if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) && l.close == nil {
			l.close = err
		}
	})
	return l.close
}

// CANSocket returns the operator CAN socket that belongs to the API socket
// apiSocket: "/run/berth/berthd.sock" gives "/run/berth/berthd-can.sock".
// berthd serves the canwire protocol there with the API socket's owner and
// mode; a session opened on it names a board CAN device (not a grant) and may
// receive and send every ID on it. `berth can` uses it.
func CANSocket(apiSocket string) string {
	return strings.TrimSuffix(apiSocket, ".sock") + "-can.sock"
}
