package monitor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-io/berth/core/fsutil"
)

// Defaults for log rotation.
const (
	DefaultLogMaxSize  = 1 << 20 // bytes per log file
	DefaultLogMaxFiles = 3       // current.log plus two rotated files
	// MaxLineSize is the longest log line; longer output is split.
	MaxLineSize = 16 << 10
)

// File names in the monitor directory.
const (
	configFile     = "monitor.json"
	monitorPidFile = "monitor.pid"
	containerPid   = "container.pid"
	exitFile       = "exit.json"
	diagFile       = "monitor.log"
	logDir         = "log"
	currentLog     = "current.log"
)

// Config is what one monitor runs. Start writes it to Dir/monitor.json.
type Config struct {
	ID          string `json:"id"`           // container id (runtime id)
	Bundle      string `json:"bundle"`       // bundle dir with config.json
	Dir         string `json:"dir"`          // monitor dir for pid/exit/log files
	RuntimePath string `json:"runtime_path"` // runc or crun binary
	RuntimeRoot string `json:"runtime_root"` // the runtime's --root; "" for its default
	MonitorPath string `json:"monitor_path"` // the berth-monitor binary
	// LogMaxSize is the size at which current.log is rotated
	// (DefaultLogMaxSize when 0).
	LogMaxSize int64 `json:"log_max_size"`
	// LogMaxFiles is how many log files are kept, current.log included
	// (DefaultLogMaxFiles when 0).
	LogMaxFiles int `json:"log_max_files"`
}

func (c *Config) normalize() error {
	if c.LogMaxSize <= 0 {
		c.LogMaxSize = DefaultLogMaxSize
	}
	if c.LogMaxSize < MaxLineSize+128 {
		c.LogMaxSize = MaxLineSize + 128 // a line always fits a file
	}
	if c.LogMaxFiles <= 0 {
		c.LogMaxFiles = DefaultLogMaxFiles
	}
	for _, f := range []struct{ name, v string }{
		{"ID", c.ID}, {"Bundle", c.Bundle}, {"Dir", c.Dir}, {"RuntimePath", c.RuntimePath}, {"MonitorPath", c.MonitorPath},
	} {
		if f.v == "" {
			return fmt.Errorf("%w: %s is empty", ErrInvalidConfig, f.name)
		}
	}
	for _, p := range []*string{&c.Bundle, &c.Dir, &c.RuntimePath, &c.MonitorPath} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
		*p = abs
	}
	return nil
}

func writeConfig(c Config) error {
	b, err := json.MarshalIndent(c, "", "\t")
	if err != nil {
		return err
	}
	return fsutil.ReplaceFile(filepath.Join(c.Dir, configFile), b, 0o600)
}

func readConfig(dir string) (Config, error) {
	var c Config
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("decode %s: %w", configFile, err)
	}
	return c, c.normalize()
}

// ExitStatus is how a container's init ended.
type ExitStatus struct {
	// Code is the exit code, or 128+n when killed by signal n.
	Code int `json:"code"`
	// Signal names the killing signal ("SIGKILL"), "" on a normal exit.
	Signal string `json:"signal,omitempty"`
	// At is when the monitor reaped the init.
	At time.Time `json:"at"`
}

func writeExit(dir string, st ExitStatus) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return fsutil.ReplaceFile(filepath.Join(dir, exitFile), b, 0o644)
}

// readExit returns the recorded exit status; ok is false when there is none.
func readExit(dir string) (ExitStatus, bool, error) {
	var st ExitStatus
	b, err := os.ReadFile(filepath.Join(dir, exitFile))
	if os.IsNotExist(err) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, false, fmt.Errorf("decode %s: %w", exitFile, err)
	}
	return st, true, nil
}
