package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/core/hil"
)

func TestBootTimeout(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want time.Duration
	}{
		{"go test default", []string{"-test.paniconexit0", "-test.timeout=10m0s", "-test.v=true"}, 10*time.Minute + bootAllowance},
		{"double dash", []string{"--test.timeout=90s"}, 90*time.Second + bootAllowance},
		{"separate value", []string{"-test.timeout", "2m"}, 2*time.Minute + bootAllowance},
		{"none", []string{"-test.v=true"}, defaultTimeout},
		{"zero means none", []string{"-test.timeout=0s"}, defaultTimeout},
		{"garbage", []string{"-test.timeout=soon"}, defaultTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := bootTimeout(tc.args); got != tc.want {
				t.Errorf("bootTimeout(%q) = %v, want %v", tc.args, got, tc.want)
			}
		})
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no arguments", nil, 2},
		{"missing binary", []string{"/nonexistent/pkg.test"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, err := run(tc.args)
			if err == nil || code != tc.code {
				t.Errorf("run(%q) = %d, %v; want %d and an error", tc.args, code, err, tc.code)
			}
		})
	}
}

// TestRunRefusesBadManifest: a mistake in the package's hil.hcl is
// reported, with its place, before anything is fetched or booted.
func TestRunRefusesBadManifest(t *testing.T) {
	bin, err := exec.LookPath("busybox")
	if err != nil || hil.CheckStatic(bin) != nil {
		t.Skip("needs a static busybox (busybox-static) as a stand-in test binary")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, hil.ManifestName), []byte("files = { \"b\" = \"missing\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	t.Setenv("BERTH_HIL_CACHE", t.TempDir())
	code, err := run([]string{bin})
	want := filepath.Join(dir, hil.ManifestName) + `:1:17: file "missing" for b`
	if code != 1 || err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("run with a bad manifest = %d, %v; want 1 and an error containing %q", code, err, want)
	}
}
