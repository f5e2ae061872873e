package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/berth-io/berth/core/version"
)

// Main parses berthd's flags and runs it until SIGINT or SIGTERM. The
// containers keep running after it returns.
func Main(args []string) error {
	fs := flag.NewFlagSet("berthd", flag.ContinueOnError)
	var cfg Config
	var logLevel, logFormat string
	var showVersion bool
	fs.StringVar(&cfg.StateDir, "state-dir", "/var/lib/berth", "directory for images, layers, volumes and generations")
	fs.StringVar(&cfg.RunDir, "run-dir", "/run/berth", "directory for the socket, runtime state and network namespaces")
	fs.StringVar(&cfg.Socket, "socket", "", "API socket path (default RUN-DIR/berthd.sock)")
	fs.IntVar(&cfg.SocketGID, "socket-group", -1, "numeric group that may also use the socket (default: root only)")
	fs.StringVar(&cfg.Runtime, "runtime", "crun", "preferred OCI runtime: crun, runc, or a path; berthd falls back to the other when it cannot run a container here")
	fs.StringVar(&cfg.MonitorPath, "monitor", "", "berth-monitor binary (default: beside berthd, else in PATH)")
	fs.StringVar(&cfg.CgroupParent, "cgroup-parent", "berth", "cgroup under which containers run")
	fs.StringVar(&cfg.Board, "board", "", "board file naming the devices and their plugins (e.g. board-support/sim/board.hcl); none: no devices")
	fs.Func("plugin-dir", "folder to look for device plugins in, before $PATH; repeatable (default: berthd's own folder)", func(s string) error {
		cfg.PluginDirs = append(cfg.PluginDirs, s)
		return nil
	})
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if showVersion {
		fmt.Println("berthd", version.Version)
		return nil
	}
	log, err := newLogger(os.Stderr, logLevel, logFormat)
	if err != nil {
		return err
	}
	cfg.Log = log
	if os.Getenv("GOGC") == "" {
		// An ECU has little memory: collect at 50 % heap growth rather
		// than Go's 100 %. berthd's heap is small, so the cost is small.
		debug.SetGCPercent(50)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return Run(ctx, cfg)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
