package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

// stackName is the benchmark stack's name in its playbook.
const stackName = "bench"

// benchImages are the archives the stack uses, by file name in -images, as
// cmd/mkimage writes them. busybox is every container's base.
var benchImages = []string{"busybox.tar", "base-config.tar", "kvdb.tar", "sensor.tar", "dashboard.tar"}

// playbook is the benchmark stack: 5 containers, each the busybox image
// plus one small top image, running a process that stays up with no
// network (network_mode "none", the default), so the bare-runtime baseline
// does exactly the same work. SIGKILL makes `berth down` quick.
const playbook = `stack "bench" {
  container "config" {
    images  = ["berth.local/busybox:1.35", "berth.local/base-config:1"]
    command = ["/bin/sleep", "3600"]
    stop { signal = "SIGKILL" }
  }
  container "kvdb" {
    images  = ["berth.local/busybox:1.35", "berth.local/kvdb:1"]
    command = ["/bin/sleep", "3600"]
    stop { signal = "SIGKILL" }
  }
  container "sensor" {
    images  = ["berth.local/busybox:1.35", "berth.local/sensor:1"]
    command = ["/bin/sleep", "3600"]
    stop { signal = "SIGKILL" }
  }
  container "dashboard" {
    images  = ["berth.local/busybox:1.35", "berth.local/dashboard:1"]
    command = ["/bin/sleep", "3600"]
    stop { signal = "SIGKILL" }
  }
  container "kvdb-2" {
    images  = ["berth.local/busybox:1.35", "berth.local/kvdb:1"]
    command = ["/bin/sleep", "3600"]
    stop { signal = "SIGKILL" }
  }
}
`

// containers are the playbook's container names.
var containers = []string{"config", "kvdb", "sensor", "dashboard", "kvdb-2"}

// idleWait is how long berthd is left alone before its RSS is read.
const idleWait = time.Second

type options struct {
	bin, images, runtime string
	board                string // berthd's --board for the stack part
	runs                 int
	json                 bool
	only                 string // "", "stack" or "can"
	cpuProfile           string // write this process's CPU profile here
}

const usage = "usage: berth-bench [-bin DIR] [-images DIR] [-board FILE] [-runtime NAME] [-n RUNS] [-only stack|can] [-json] [-cpuprofile FILE]"

func run(args []string) error {
	fs := flag.NewFlagSet("berth-bench", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.bin, "bin", "bin", "directory holding berthd, berth, berth-monitor and berth-plugin-vcan (make build)")
	fs.StringVar(&o.images, "images", "build/images", "directory holding the image archives (make images)")
	fs.StringVar(&o.board, "board", "board-support/sim/board.hcl", "the board file berthd runs with in the stack part, as on an ECU (its plugins count in their own RSS, not berthd's)")
	fs.StringVar(&o.runtime, "runtime", "crun", "berthd's preferred OCI runtime; the baseline uses the one berthd selects")
	fs.IntVar(&o.runs, "n", 11, "cold-start runs of each kind, alternating (the median is reported: more runs, less noise)")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of a table")
	fs.StringVar(&o.only, "only", "", `run one part only: "stack" (cold start, berthd RSS, disk) or "can" (CAN broker fan-out and latency, plugin RSS; needs no root)`)
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write berth-bench's own CPU profile (the broker, the device socket, the readers in the CAN part) to `FILE`, for go tool pprof")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || o.runs < 1 {
		return errors.New(usage)
	}
	var stackPart, canPart bool
	switch o.only {
	case "":
		stackPart, canPart = true, true
	case "stack":
		stackPart = true
	case "can":
		canPart = true
	default:
		return fmt.Errorf("-only %q: want stack or can; %s", o.only, usage)
	}
	if stackPart {
		if err := checkStack(o); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	rep := &report{Machine: hostMachine()}
	if stackPart {
		if err := measureStack(ctx, o, rep); err != nil {
			return err
		}
	}
	if canPart {
		bin, err := filepath.Abs(o.bin)
		if err != nil {
			return err
		}
		if rep.CAN, err = measureCAN(ctx, bin, logf); err != nil {
			if ctx.Err() != nil {
				return errors.New("interrupted")
			}
			return err
		}
	}
	if o.json {
		return rep.writeJSON(os.Stdout)
	}
	rep.writeTable(os.Stdout)
	return nil
}

// checkStack checks what the stack part needs: root, the binaries and the
// image archives.
func checkStack(o options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: berthd mounts overlays and runs containers (try: sudo make bench, or -only can)")
	}
	for _, name := range []string{"berthd", "berth", "berth-monitor"} {
		if _, err := os.Stat(filepath.Join(o.bin, name)); err != nil {
			return fmt.Errorf("%w (run make build)", err)
		}
	}
	for _, name := range benchImages {
		if _, err := os.Stat(filepath.Join(o.images, name)); err != nil {
			return fmt.Errorf("%w (run make images)", err)
		}
	}
	return nil
}

// measureStack runs the stack part on its own berthd, fills rep's stack
// figures and cleans up, also on failure.
func measureStack(ctx context.Context, o options, rep *report) error {
	b, err := newBench(o)
	if err != nil {
		return err
	}
	err = b.measure(ctx, rep)
	if err != nil && ctx.Err() != nil {
		err = errors.New("interrupted") // the rest is the fallout of cancelling
	}
	if cerr := b.cleanup(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
	}
	return err
}

// measure runs the stack part on a new bench and fills rep's stack
// figures. The caller cleans up.
func (b *bench) measure(ctx context.Context, rep *report) error {
	rep.Runs, rep.Network, rep.Containers = b.opts.runs, "none", len(containers)
	if err := b.startDaemon(ctx); err != nil {
		return err
	}
	var err error
	if err = b.ociRuntime(ctx, &rep.Machine); err != nil {
		return err
	}
	b.logf("machine: %s, %d cores, Linux %s, %s", rep.Machine.CPU, rep.Machine.Cores, rep.Machine.Kernel, rep.Machine.RuntimeVersion)
	for _, name := range benchImages {
		if _, err := b.berth(ctx, "image", "import", filepath.Join(b.opts.images, name)); err != nil {
			return err
		}
	}
	// The figure that counts is berthd started on a store that holds the
	// images, as on an ECU's boot, without the garbage of importing them.
	b.stopDaemon()
	if err := b.startDaemon(ctx); err != nil {
		return fmt.Errorf("restart berthd: %w", err)
	}
	idle, err := b.idleRSS(ctx)
	if err != nil {
		return err
	}
	rep.RSS.IdleKiB = idle.KiB

	// Warm-up: the first up unpacks the layers; it is not timed. While it
	// is up, measure memory and disk and copy the bundles for the baseline.
	b.logf("warm-up: berth up (unpacks the layers once)")
	if _, err := b.upBerth(ctx); err != nil {
		return err
	}
	// berthd trims what a burst of work left once it is quiet (idleWait
	// is longer); the figure as up returns shows what it held.
	busy, err := readRSS(b.daemon.Process.Pid)
	if err != nil {
		return err
	}
	rep.RSS.UpKiB = busy.KiB
	stackRSS, err := b.idleRSS(ctx)
	if err != nil {
		return err
	}
	rep.RSS.StackKiB, rep.RSS.StackAnonKiB, rep.RSS.StackFileKiB = stackRSS.KiB, stackRSS.AnonKiB, stackRSS.FileKiB
	if rep.RSS.Monitors, rep.RSS.MonitorKiB, err = b.monitorsRSS(); err != nil {
		return err
	}
	if rep.Storage, err = b.storage(ctx); err != nil {
		return err
	}
	if err := b.prepareDirect(ctx); err != nil {
		return err
	}
	if err := b.downBerth(ctx); err != nil {
		return err
	}

	for i := range b.opts.runs {
		order := []bool{true, false} // berth first on even runs
		if i%2 == 1 {
			order = []bool{false, true}
		}
		for _, berth := range order {
			var took time.Duration
			var err error
			if berth {
				if took, err = b.upBerth(ctx); err == nil {
					rep.Cold.BerthMs = append(rep.Cold.BerthMs, ms(took))
					took, err = b.cliRoundTrip(ctx)
					rep.Cold.CLIMs = append(rep.Cold.CLIMs, ms(took))
				}
				if err == nil {
					err = b.downBerth(ctx)
				}
			} else {
				if took, err = b.upDirect(ctx); err == nil {
					rep.Cold.DirectMs = append(rep.Cold.DirectMs, ms(took))
					err = b.downDirect(ctx)
				}
			}
			if err != nil {
				return fmt.Errorf("run %d: %w", i+1, err)
			}
		}
		b.logf("run %d/%d: berth %.1f ms, %s %.1f ms", i+1, b.opts.runs,
			rep.Cold.BerthMs[i], rep.Machine.Runtime, rep.Cold.DirectMs[i])
	}
	rep.finish()
	return nil
}

// idleRSS leaves berthd idle for idleWait and returns its RSS.
func (b *bench) idleRSS(ctx context.Context) (rss, error) {
	if err := pause(ctx, idleWait); err != nil {
		return rss{}, err
	}
	return readRSS(b.daemon.Process.Pid)
}

// cliRoundTrip times one `berth ps` (CLI start, dial, one small RPC): the
// fixed part of any berth command, shown beside the cold start.
func (b *bench) cliRoundTrip(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	_, err := b.berth(ctx, "ps")
	return time.Since(start), err
}

// pause waits d, or until ctx ends. The wait is the measurement (berthd
// left idle), not a hope that something settles.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
