package pluginhost

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// levelTrace is hclog's Trace level in slog terms (below Debug).
const levelTrace = slog.LevelDebug - 4

// slogHCLog is an hclog.Logger that writes to a slog.Logger, so go-plugin
// (which re-logs each of a plugin's log lines through hclog) lands plugin
// lines in berthd's structured log. Its name (go-plugin names it after the
// plugin binary) becomes the "logger" attribute; the level filter is the
// slog handler's.
type slogHCLog struct {
	l       *slog.Logger
	name    string
	implied []any
}

var _ hclog.Logger = (*slogHCLog)(nil)

// newHCLog returns an hclog.Logger writing to l.
func newHCLog(l *slog.Logger) hclog.Logger { return &slogHCLog{l: l} }

func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (s *slogHCLog) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	lvl := slogLevel(level)
	ctx := context.Background()
	if !s.l.Enabled(ctx, lvl) {
		return
	}
	attrs := make([]any, 0, len(s.implied)+len(args)+2)
	if s.name != "" {
		attrs = append(attrs, "logger", s.name)
	}
	attrs = append(attrs, s.implied...)
	attrs = append(attrs, args...)
	s.l.Log(ctx, lvl, msg, attrs...)
}

func (s *slogHCLog) Trace(msg string, args ...any) { s.Log(hclog.Trace, msg, args...) }
func (s *slogHCLog) Debug(msg string, args ...any) { s.Log(hclog.Debug, msg, args...) }
func (s *slogHCLog) Info(msg string, args ...any)  { s.Log(hclog.Info, msg, args...) }
func (s *slogHCLog) Warn(msg string, args ...any)  { s.Log(hclog.Warn, msg, args...) }
func (s *slogHCLog) Error(msg string, args ...any) { s.Log(hclog.Error, msg, args...) }

func (s *slogHCLog) enabled(l hclog.Level) bool {
	return s.l.Enabled(context.Background(), slogLevel(l))
}

func (s *slogHCLog) IsTrace() bool { return s.enabled(hclog.Trace) }
func (s *slogHCLog) IsDebug() bool { return s.enabled(hclog.Debug) }
func (s *slogHCLog) IsInfo() bool  { return s.enabled(hclog.Info) }
func (s *slogHCLog) IsWarn() bool  { return s.enabled(hclog.Warn) }
func (s *slogHCLog) IsError() bool { return s.enabled(hclog.Error) }

func (s *slogHCLog) ImpliedArgs() []any { return s.implied }

func (s *slogHCLog) With(args ...any) hclog.Logger {
	c := *s
	c.implied = append(append([]any(nil), s.implied...), args...)
	return &c
}

func (s *slogHCLog) Name() string { return s.name }

func (s *slogHCLog) Named(name string) hclog.Logger {
	c := *s
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (s *slogHCLog) ResetNamed(name string) hclog.Logger {
	c := *s
	c.name = name
	return &c
}

// SetLevel does nothing: the slog handler owns the level.
func (s *slogHCLog) SetLevel(hclog.Level) {}

// GetLevel returns the lowest hclog level the slog handler lets through.
func (s *slogHCLog) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if s.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (s *slogHCLog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(s.StandardWriter(opts), "", 0)
}

func (s *slogHCLog) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return &stdWriter{l: s, level: level}
}

// stdWriter logs each line written to it at one level.
type stdWriter struct {
	l     *slogHCLog
	level hclog.Level
}

func (w *stdWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		if len(line) > 0 {
			w.l.Log(w.level, string(line))
		}
	}
	return len(p), nil
}
