package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/berth-io/berth/core/board"
	"github.com/berth-io/berth/core/broker"
	"github.com/berth-io/berth/core/pluginhost"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/canwire"
	"github.com/berth-io/berth/plugins/vcan"
)

// The CAN part of the bench runs the path a container's CAN frames take,
// with real processes and sockets: the berth-plugin-vcan process started
// by core/pluginhost from a temporary board file, the broker on the host,
// and readers that are canwire clients of a unixpacket device socket
// served by canwire.Serve, as a container's program is (the container
// boundary adds nothing to a unix socket). Frames come from a member of
// the same vcan hub in this process; the plugin process hosts the hub, so
// every frame carries the hub's bus time, which is the plugin's receive.

const (
	canPlugin = "berth-plugin-vcan"
	canDevice = "can0"  // the board's name for the bus
	canGrant  = "bench" // the grant the readers name in their hello
	// canContainer is whose sessions the broker opens, as berth ps
	// names a container.
	canContainer = "bench/reader"
)

// canBoardFile is the bench's board: one vcan bus on a hub socket private
// to this run, so that no other vcan user on the host joins it.
const canBoardFile = `board "bench" {
  description = "berth-bench: one vcan bus on a private hub"
  plugin "vcan" {
    path = %q
    config {
      socket = %q
      buses  = { vcan0 = {} }
    }
  }
  device %q {
    class  = "can"
    plugin = "vcan"
    id     = "vcan0"
  }
}
`

// canRig is the running set-up. close stops all of it.
type canRig struct {
	dir    string // temporary: the board file and the device socket
	socket string // the vcan hub's socket
	host   *pluginhost.Host
	pid    int // the plugin process

	inj *vcan.Plugin // the injector: one more member of the hub
	tx  can.Bus

	broker    *broker.Broker
	grant     broker.Grant // the readers' grant: every frame, no sends
	devSock   string       // the device socket the readers dial
	stopServe context.CancelFunc
	served    chan error

	seq   uint64 // the next sequence number to inject
	drops uint64 // the plugin's drop count at the last deviceDrops
}

// startCAN starts the plugin from bin, joins the injector to its hub and
// serves the broker on a device socket. On error it undoes what it did.
func startCAN(ctx context.Context, bin string) (r *canRig, err error) {
	dir, err := os.MkdirTemp("", "berth-bench-can-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	r = &canRig{dir: dir, socket: "@berth-bench-vcan-" + strconv.Itoa(os.Getpid())}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.close())
			r = nil
		}
	}()

	boardPath := filepath.Join(dir, "board.hcl")
	src := fmt.Sprintf(canBoardFile, filepath.Join(bin, canPlugin), r.socket, canDevice)
	if err := os.WriteFile(boardPath, []byte(src), 0o644); err != nil {
		return nil, fmt.Errorf("write board file: %w", err)
	}
	b, diags := board.Load(boardPath)
	if diags.HasErrors() {
		return nil, fmt.Errorf("board file %s: %s", boardPath, diags.Error())
	}
	if r.host, err = pluginhost.Start(ctx, b, pluginhost.WithLogger(slog.New(slog.DiscardHandler))); err != nil {
		return nil, fmt.Errorf("start %s: %w (run make build)", canPlugin, err)
	}
	if r.pid, err = childPid(canPlugin); err != nil {
		return nil, err
	}

	// The plugin hosts the hub since it configured first; the injector
	// joins it as one more member.
	r.inj = vcan.New(hclog.NewNullLogger())
	cfg := cty.ObjectVal(map[string]cty.Value{
		"socket": cty.StringVal(r.socket),
		"buses":  cty.MapVal(map[string]cty.Value{"vcan0": cty.ObjectVal(map[string]cty.Value{"fd": cty.False})}),
	})
	if err := r.inj.Configure(ctx, cfg); err != nil {
		return nil, fmt.Errorf("injector: %w", err)
	}
	if r.tx, err = r.inj.Open(ctx, "vcan0"); err != nil {
		return nil, fmt.Errorf("injector: %w", err)
	}

	r.broker = broker.New(r.host)
	r.devSock = filepath.Join(dir, "device.sock")
	l, err := net.ListenUnix(canwire.Network, &net.UnixAddr{Name: r.devSock, Net: canwire.Network})
	if err != nil {
		return nil, fmt.Errorf("device socket: %w", err)
	}
	r.grant = broker.Grant{Name: canGrant, Device: canDevice, Receive: broker.Filters{broker.AnyID()}}
	open := func(ctx context.Context, name string) (can.Bus, error) {
		if name != canGrant {
			return nil, fmt.Errorf("container %s has no CAN grant %q (it holds %q): %w", canContainer, name, canGrant, canwire.ErrUnknownGrant)
		}
		return r.broker.Open(ctx, canContainer, r.grant)
	}
	sctx, stop := context.WithCancel(context.Background())
	r.stopServe, r.served = stop, make(chan error, 1)
	go func() { r.served <- canwire.Serve(sctx, l, open) }()
	return r, nil
}

// close stops the device socket, the broker, the injector and the plugin,
// in that order, and removes the temporary directory. The injector leaves
// the hub before the plugin that hosts it exits, so it does not take the
// hub over.
func (r *canRig) close() error {
	var errs []error
	if r.stopServe != nil {
		r.stopServe()
		errs = append(errs, <-r.served)
	}
	if r.broker != nil {
		errs = append(errs, r.broker.Close())
	}
	if r.tx != nil {
		errs = append(errs, r.tx.Close())
	}
	if r.inj != nil {
		errs = append(errs, r.inj.Close())
	}
	if r.host != nil {
		errs = append(errs, r.host.Close())
	}
	errs = append(errs, os.RemoveAll(r.dir))
	return errors.Join(errs...)
}

// childPid returns the pid of this process's one child running the
// binary named name.
func childPid(name string) (int, error) {
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	var found []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, comm, err := procParent(pid); err == nil && ppid == self && strings.HasPrefix(name, comm) {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("want one %s process under pid %d, found %d", name, self, len(found))
	}
	return found[0], nil
}

// procParent returns the parent pid and the command name (at most 15
// bytes, as the kernel keeps it) of process pid.
func procParent(pid int) (int, string, error) {
	comm, f, err := procStat(pid)
	if err != nil {
		return 0, "", err
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, comm, err
}

// procStat returns the command name of process pid and the fields of its
// /proc/PID/stat after it, from the third (state) on.
func procStat(pid int) (string, []string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", nil, err
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return "", nil, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	return s[open+1 : end], f, nil
}
