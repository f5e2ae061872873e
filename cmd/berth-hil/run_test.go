package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// fakeQEMU writes a stand-in for qemu-system-x86_64 into dir: each boot
// appends its -accel to dir/boots; the first `stalls` boots print
// "partial output", leave a soft lockup on the console and end without an
// exit status, as a stalled guest that panicked does; later boots print a
// test's PASS line and the exit status the payload's marker asks for.
func fakeQEMU(t *testing.T, dir string, stalls int) string {
	t.Helper()
	script := `#!/bin/sh
for a; do
	case "$prev" in -initrd) initrd=$a ;; -accel) accel=$a ;; esac
	case "$a" in file,id=console,path=*) console=${a#file,id=console,path=} ;; esac
	prev=$a
done
echo "$accel" >>"$FAKE_QEMU_BOOTS"
if [ "$(wc -l <"$FAKE_QEMU_BOOTS")" -le "$FAKE_QEMU_STALLS" ]; then
	echo "partial output"
	echo "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [runc:198]" >"$console"
	echo "Kernel panic - not syncing: softlockup: hung tasks" >>"$console"
	exit 0
fi
echo "--- PASS: TestGuest"
echo "$(grep -a -o 'berth-hil-exit-[0-9a-f]*=' "$initrd" | head -n 1)0"
`
	t.Setenv("FAKE_QEMU_BOOTS", filepath.Join(dir, "boots"))
	t.Setenv("FAKE_QEMU_STALLS", strconv.Itoa(stalls))
	path := filepath.Join(dir, "qemu")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunTestStall checks that a guest kernel stall gets one more boot,
// whose output alone reaches stdout, that a second stall fails with
// hil.ErrGuestStalled, and that a stall under an automatically chosen
// KVM reboots under TCG and keeps TCG for later runs.
func TestRunTestStall(t *testing.T) {
	bin, err := exec.LookPath("busybox")
	if err != nil || hil.CheckStatic(bin) != nil {
		t.Skip("needs a static busybox (busybox-static) as a stand-in test binary")
	}
	for _, tc := range []struct {
		name      string
		stalls    int
		accel     string
		auto      bool
		wantBoots string
		wantErr   error
	}{
		{"stall then pass", 1, hil.AccelTCG, true, "tcg\ntcg\n", nil},
		{"stall twice", 2, hil.AccelTCG, true, "tcg\ntcg\n", hil.ErrGuestStalled},
		{"stall under chosen KVM", 1, hil.AccelKVM, true, "kvm\ntcg\n", nil},
		{"stall under forced KVM", 1, hil.AccelKVM, false, "kvm\nkvm\n", nil},
		{"no stall", 0, hil.AccelTCG, true, "tcg\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, cache := t.TempDir(), t.TempDir()
			base := filepath.Join(dir, "base.cpio")
			if err := os.WriteFile(base, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			vm := hil.VM{QEMU: fakeQEMU(t, dir, tc.stalls), Kernel: bin, Initramfs: base, Accel: tc.accel, MemoryMB: 64, CPUs: 1}
			var stdout, stderr bytes.Buffer
			res, err := runTest(t.Context(), &vm, hil.Payload{Binary: bin}, tc.auto, cache, slog.New(slog.DiscardHandler), &stdout, &stderr)
			if boots, _ := os.ReadFile(filepath.Join(dir, "boots")); string(boots) != tc.wantBoots {
				t.Errorf("boots under %q, want %q", boots, tc.wantBoots)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), "soft lockup") {
					t.Errorf("runTest = %v, want %v with the console", err, tc.wantErr)
				}
				return
			}
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("runTest = %+v, %v; want exit status 0", res, err)
			}
			if got := stdout.String(); got != "--- PASS: TestGuest\n" {
				t.Errorf("stdout %q, want the passing boot's output alone", got)
			}
			stalled := tc.stalls > 0
			if said := strings.Contains(stderr.String(), "stalled under "+tc.accel); said != stalled ||
				stalled && (!strings.Contains(stderr.String(), "partial output") || !strings.Contains(stderr.String(), "soft lockup")) {
				t.Errorf("stderr %q: want the stall, its output and console said only when the guest stalled", stderr.String())
			}
			stamps, _ := filepath.Glob(filepath.Join(cache, "accel-*"))
			if distrusted := len(stamps) == 1; distrusted != (tc.name == "stall under chosen KVM") {
				t.Errorf("accel stamps %q: want KVM distrusted only after a stall under a chosen KVM", stamps)
			}
		})
	}
}
