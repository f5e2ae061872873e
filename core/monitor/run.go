package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-io/berth/core/fsutil"
	"github.com/berth-io/berth/core/oci"
	"golang.org/x/sys/unix"
)

// reportFD is the descriptor on which Start passes the monitor the write
// end of the report pipe.
const reportFD = 3

// runtimeTimeout bounds each runtime call the monitor makes.
const runtimeTimeout = 2 * time.Minute

// drainTimeout bounds how long the monitor waits for the container's
// output pipes to close after its init exited (a process that escaped the
// container could hold them open).
const drainTimeout = 5 * time.Second

// report is the one message the monitor sends to Start.
type report struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// Main is the berth-monitor program. args is os.Args; it returns the exit
// code. Invocations:
//
//	berth-monitor run <dir>      monitor the container configured in <dir>/monitor.json
//	berth-monitor --probe-exit   exit 0 at once (oci.Select's probe payload)
func Main(args []string) int {
	if len(args) == 2 && args[1] == oci.ProbeExitArg {
		return 0
	}
	if len(args) != 3 || args[1] != "run" {
		fmt.Fprintf(os.Stderr, "usage: %s run <monitor-dir> | %s\n", filepath.Base(args[0]), oci.ProbeExitArg)
		return 2
	}
	if err := run(args[2]); err != nil {
		fmt.Fprintf(os.Stderr, "berth-monitor: %v\n", err)
		return 1
	}
	return 0
}

func run(dir string) error {
	// Terminal and pipe signals must not end the monitor; it is in its
	// own session and outlives its parent.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE)
	rep := os.NewFile(reportFD, "report")
	send := func(r report) {
		if rep == nil {
			return
		}
		b, _ := json.Marshal(r)
		rep.Write(append(b, '\n')) // berthd may be gone: errors are expected
		rep.Close()
		rep = nil
	}
	fail := func(err error) error {
		send(report{Error: err.Error()})
		return err
	}

	cfg, err := readConfig(dir)
	if err != nil {
		return fail(fmt.Errorf("read config: %w", err))
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail(fmt.Errorf("become subreaper: %w", err))
	}
	if err := fsutil.ReplaceFile(filepath.Join(dir, monitorPidFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fail(err)
	}
	logs, err := openLogWriter(filepath.Join(dir, logDir), cfg.LogMaxSize, cfg.LogMaxFiles, os.Stderr)
	if err != nil {
		return fail(fmt.Errorf("open log: %w", err))
	}
	defer logs.close()

	rt, err := oci.New(cfg.RuntimePath, oci.WithRoot(cfg.RuntimeRoot))
	if err != nil {
		return fail(err)
	}
	pid, outR, errR, err := createAndStart(rt, cfg)
	if err != nil {
		return fail(err)
	}
	send(report{Pid: pid})

	var wg sync.WaitGroup
	for _, s := range []struct {
		name string
		r    *os.File
	}{{"stdout", outR}, {"stderr", errR}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			copyLines(logs, s.name, s.r)
		}()
	}
	st := reap(pid)

	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		fmt.Fprintf(os.Stderr, "berth-monitor: output still open %s after the container exited; closing it\n", drainTimeout)
		outR.Close()
		errR.Close()
		<-drained
	}
	if err := logs.close(); err != nil {
		fmt.Fprintf(os.Stderr, "berth-monitor: close log: %v\n", err)
	}
	if err := writeExit(dir, st); err != nil {
		return fmt.Errorf("write %s: %w", exitFile, err)
	}
	return nil
}

// createAndStart creates and starts the container (one `run --detach`)
// with fresh output pipes as its stdout and stderr. It returns the init pid and the read ends
// of the pipes. On failure the runtime's state is deleted.
func createAndStart(rt *oci.Runtime, cfg Config) (pid int, outR, errR *os.File, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), runtimeTimeout)
	defer cancel()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, nil, nil, err
	}
	defer devnull.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return 0, nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return 0, nil, nil, err
	}
	pidFile := filepath.Join(cfg.Dir, containerPid)
	cerr := rt.RunDetached(ctx, cfg.ID, cfg.Bundle, pidFile, devnull, outW, errW)
	// The container holds its own copies of the write ends now.
	outW.Close()
	errW.Close()
	if cerr == nil {
		pid, cerr = readPid(pidFile)
	}
	if cerr != nil {
		outR.Close()
		errR.Close()
		cleanup, ccancel := context.WithTimeout(context.Background(), runtimeTimeout)
		defer ccancel()
		if derr := rt.Delete(cleanup, cfg.ID, true); derr != nil && !errors.Is(derr, oci.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "berth-monitor: clean up after failed start: %v\n", derr)
		}
		os.Remove(pidFile)
		return 0, nil, nil, fmt.Errorf("%w: %w", ErrStartFailed, cerr)
	}
	return pid, outR, errR, nil
}

// reap reaps every child (the monitor is a subreaper, so orphans of the
// container's runtime land here) until the container's init exits, and
// returns the init's status.
func reap(pid int) ExitStatus {
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// ECHILD: the init is not our child any more, which only
			// happens when something else reaped it. Nothing to report.
			fmt.Fprintf(os.Stderr, "berth-monitor: wait for container init %d: %v\n", pid, err)
			return ExitStatus{Code: -1, At: time.Now().UTC()}
		}
		if wpid != pid {
			continue
		}
		st := ExitStatus{At: time.Now().UTC()}
		switch {
		case ws.Signaled():
			st.Code = 128 + int(ws.Signal())
			st.Signal = unix.SignalName(ws.Signal())
		default:
			st.Code = ws.ExitStatus()
		}
		return st
	}
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pid in %s: %q", path, b)
	}
	return pid, nil
}
