package pluginhost

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berth-io/berth/core/board"
)

func TestResolvePath(t *testing.T) {
	boardDir, pluginDir, pathDir := t.TempDir(), t.TempDir(), t.TempDir()
	exe := func(path string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	inBoard := exe(filepath.Join(boardDir, "plugins", "p"))
	inDir := exe(filepath.Join(pluginDir, "p"))
	inPath := exe(filepath.Join(pathDir, "only-on-path"))
	notExec := filepath.Join(pluginDir, "not-exec")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", pathDir)
	cases := []struct{ path, want string }{
		{inDir, inDir},                     // absolute
		{"plugins/p", inBoard},             // relative to the board file
		{"p", inDir},                       // a plugin dir
		{"only-on-path", inPath},           // $PATH
		{"not-exec", ""},                   // not executable
		{filepath.Join(boardDir, "x"), ""}, // absolute, missing
	}
	for _, c := range cases {
		got, err := resolvePath(&board.Plugin{Name: "p", Path: c.path}, boardDir, []string{pluginDir})
		if c.want == "" {
			if !errors.Is(err, ErrPluginNotFound) {
				t.Errorf("%s: %q, %v; want ErrPluginNotFound", c.path, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.path, got, err, c.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	p := &proc{h: &Host{cfg: config{backoffMin: 100 * time.Millisecond, backoffMax: time.Second}}}
	ms := time.Millisecond
	for i, want := range []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second} {
		if got := p.backoff(i + 1); got != want {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, want)
		}
	}
	if got := p.backoff(1000); got != time.Second {
		t.Errorf("backoff(1000) = %v, want the 1s cap", got)
	}
}

func TestHCLogAdapter(t *testing.T) {
	var buf strings.Builder
	l := newHCLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))).
		With("plugin", "vcan").Named("berth-plugin-vcan")
	if l.GetLevel() != hclog.Debug || l.IsTrace() || !l.IsDebug() {
		t.Errorf("level %v (trace %v), want Debug from the slog handler", l.GetLevel(), l.IsTrace())
	}
	l.Trace("hidden")
	l.Warn("bus-off", "device", "vcan0")
	l.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Error}).Print("from std")
	out := buf.String()
	for _, want := range []string{`level=WARN msg=bus-off logger=berth-plugin-vcan plugin=vcan device=vcan0`, `level=ERROR msg="from std"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("trace line logged below the handler's level:\n%s", out)
	}
	if l.Name() != "berth-plugin-vcan" || l.ResetNamed("x").Name() != "x" || l.Named("y").Name() != "berth-plugin-vcan.y" {
		t.Errorf("names: %q", l.Name())
	}
}
