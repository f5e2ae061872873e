package hil

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestScanOutput(t *testing.T) {
	const m = "berth-hil-exit-00ff="
	tests := []struct {
		name, in, out string
		code          int
		found         bool
	}{
		{"pass", "=== RUN TestX\nPASS\n" + m + "0\n", "=== RUN TestX\nPASS\n", 0, true},
		{"fail status", "FAIL\n" + m + "1\n", "FAIL\n", 1, true},
		{"output without newline", "partial" + m + "2\n", "partial", 2, true},
		{"carriage return", "ok\n" + m + "3\r\n", "ok\n", 3, true},
		{"no marker (guest died)", "=== RUN TestX\n", "=== RUN TestX\n", 0, false},
		{"marker without a number is output", m + "x\n", m + "x\n", 0, false},
		{"other markers are output", "berth-hil-exit-1234=0\n" + m + "0\n", "berth-hil-exit-1234=0\n", 0, true},
		{"empty", "", "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code, found, err := ScanOutput(strings.NewReader(tc.in), &out, m)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || found != tc.found || out.String() != tc.out {
				t.Errorf("ScanOutput = %d, %v, %q; want %d, %v, %q", code, found, out.String(), tc.code, tc.found, tc.out)
			}
		})
	}
}

// TestShellQuote runs the quoted words through a real shell.
func TestShellQuote(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("needs sh")
	}
	for _, s := range []string{"", "-test.run=^TestA$", "it's", `a "b" $HOME \n`, "two words", "-test.v=test2json"} {
		out, err := exec.Command(sh, "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh printf %s = %q, %v; want %q", shellQuote(s), out, err, s)
		}
	}
}

func TestWritePayload(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pkg.test")
	td := filepath.Join(dir, "testdata")
	for path, data := range map[string]string{bin: "BINARY", filepath.Join(td, "sub", "log.txt"): "LOG"} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// More files: one file, and a tree reached through a symlink.
	extra := filepath.Join(dir, "extra")
	for path, data := range map[string]string{filepath.Join(extra, "board.hcl"): "BOARD", filepath.Join(extra, "tree", "a", "b"): "B"} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("tree", filepath.Join(extra, "link")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	p := Payload{Binary: bin, Args: []string{"-test.v=true", "-test.run=It's"}, Testdata: td, Files: []File{
		{Name: "hil/pkg/board.hcl", Src: filepath.Join(extra, "board.hcl")},
		{Name: "hil/bin/t", Src: filepath.Join(extra, "link")},
	}}
	if err := WritePayload(&buf, p, "MARK="); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range readNewc(t, buf.Bytes()) {
		if e.mode&cpioFile != 0 && e.mode&cpioDir == 0 {
			files[e.name] = e.data
		}
	}
	if files["hil/pkg/pkg.test"] != "BINARY" || files["hil/pkg/testdata/sub/log.txt"] != "LOG" ||
		files["hil/pkg/board.hcl"] != "BOARD" || files["hil/bin/t/a/b"] != "B" {
		t.Errorf("payload files = %v", files)
	}
	run := files["hil/run"]
	for _, want := range []string{
		"cd /hil/pkg",
		`'./pkg.test' '-test.v=true' '-test.run=It'\''s' </dev/null >/dev/ttyS1 2>&1`,
		`printf '%s%d\n' 'MARK=' "$?" >/dev/ttyS1`,
	} {
		if !strings.Contains(run, want) {
			t.Errorf("hil/run lacks %q:\n%s", want, run)
		}
	}
}

func TestCheckStatic(t *testing.T) {
	dir := t.TempDir()
	static, dynamic := filepath.Join(dir, "static"), filepath.Join(dir, "dynamic")
	if err := os.WriteFile(static, fakeELF("x=y\x00", false), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dynamic, fakeELF("x=y\x00", true), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckStatic(static); err != nil {
		t.Errorf("CheckStatic(static) = %v", err)
	}
	if err := CheckStatic(dynamic); !errors.Is(err, ErrDynamicBinary) {
		t.Errorf("CheckStatic(dynamic) = %v, want ErrDynamicBinary", err)
	}
	if err := CheckStatic(filepath.Join(dir, "missing")); err == nil || errors.Is(err, ErrDynamicBinary) {
		t.Errorf("CheckStatic(missing) = %v", err)
	}
}

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	if err := os.WriteFile(path, []byte("1\r\n2\r\n3\r\n4\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := tail(path, 2); got != "3\n4" {
		t.Errorf("tail = %q, want %q", got, "3\n4")
	}
	if got := tail(path+".none", 2); !strings.HasPrefix(got, "(no console:") {
		t.Errorf("tail of a missing file = %q", got)
	}
}

func TestGuestError(t *testing.T) {
	err := error(&GuestError{Reason: ErrTimeout, Console: "Kernel panic"})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "Kernel panic") {
		t.Errorf("GuestError = %v", err)
	}
}

// TestStalledConsole: stalled recognises the console of a guest whose CPUs
// stopped making progress (lines from a CI run) and not a healthy one.
func TestStalledConsole(t *testing.T) {
	consoles := []string{
		"[   80.582198] watchdog: BUG: soft lockup - CPU#0 stuck for 71s! [runc:198]\n",
		"[   91.174827] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n",
		"[   91.174827] rcu: rcu_preempt kthread starved for 21013 jiffies! g-91 f0x2\n",
	}
	for _, c := range consoles {
		if !stalled(c) {
			t.Errorf("stalled(%q) = false, want true", c)
		}
	}
	healthy := "[    1.2] vcan: Virtual CAN interface driver\nberth-hil: modules loaded in 0.3s\n[    9.9] reboot: Power down\n"
	if stalled(healthy) {
		t.Errorf("stalled(healthy console) = true")
	}
}

// TestStallsPanic checks the kernel command line turns a stall into a panic
// (so the guest ends at once) and a panic into qemu's exit.
func TestStallsPanic(t *testing.T) {
	vm := VM{Accel: AccelTCG, MemoryMB: 256, CPUs: 1}
	args := strings.Join(vm.args("initrd", "console"), " ")
	for _, want := range []string{"panic=-1", "softlockup_panic=1", "sysctl.kernel.panic_on_rcu_stall=1", "-no-reboot"} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu args lack %q: %s", want, args)
		}
	}
}
