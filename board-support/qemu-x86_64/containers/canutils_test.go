package containers

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestCanUtils checks the guest's independent CAN tools, which berth's
// HIL tests use to check berth: iproute2's ip makes and shows vcan links,
// candump sees what cansend sends, and cangw routes (and filters) frames
// between two buses and lists its rules.
func TestCanUtils(t *testing.T) {
	needRoot(t, "creates vcan interfaces and can-gw rules")
	ip, cansend, cangw := need(t, "ip"), need(t, "cansend"), need(t, "cangw")
	if v := run(t, ip, "-V"); !strings.Contains(v, "iproute2") {
		t.Fatalf("ip -V = %q: ip is not iproute2's (busybox's ip does not know CAN link types)", v)
	}
	const bus0, bus1 = "hilcan0", "hilcan1"
	addVcan(t, bus0)
	addVcan(t, bus1)

	t.Run("ip link", func(t *testing.T) {
		out := run(t, ip, "-details", "link", "show", bus0)
		for _, want := range []string{"link/can", "vcan", "UP"} {
			if !strings.Contains(out, want) {
				t.Errorf("ip -details link show %s lacks %q:\n%s", bus0, want, out)
			}
		}
	})

	t.Run("candump sees cansend", func(t *testing.T) {
		for _, frame := range []string{"123#DEADBEEF", "1ABCDEF0#0102", "7FF#R"} {
			dump := dumpOne(t, bus0)
			run(t, cansend, bus0, frame)
			if got, want := logFrame(t, dump.wait(t)), bus0+" "+frame; got != want {
				t.Errorf("candump -L got %q, want %q", got, want)
			}
		}
	})

	t.Run("cangw", func(t *testing.T) {
		// -e: route frames sent on this host too, which is all a vcan carries.
		rule := []string{"-s", bus0, "-d", bus1, "-e", "-f", "123:7FF"}
		run(t, cangw, append([]string{"-A"}, rule...)...)
		t.Cleanup(func() {
			if out, err := tryRun(cangw, append([]string{"-D"}, rule...)...); err != nil {
				t.Errorf("cangw -D: %v\n%s", err, out)
			}
		})
		if out := cangwList(t, cangw); !strings.Contains(out, "-s "+bus0+" -d "+bus1+" -e") {
			t.Fatalf("cangw -L does not list the rule %s → %s:\n%s", bus0, bus1, out)
		}
		// The first frame is outside the rule's filter: had it passed, the
		// one-frame dump would show it instead of the second.
		dump := dumpOne(t, bus1)
		run(t, cansend, bus0, "321#01")
		run(t, cansend, bus0, "123#CAFE")
		if got, want := logFrame(t, dump.wait(t)), bus1+" 123#CAFE"; got != want {
			t.Errorf("on %s candump -L got %q, want %q (routed by can-gw)", bus1, got, want)
		}
		if out := cangwList(t, cangw); !strings.Contains(out, "# 1 handled") {
			t.Errorf("cangw -L does not count the one routed frame:\n%s", out)
		}
	})
}

// cangwList returns what `cangw -L` lists. Its exit status is not checked:
// cangw (can-utils 2020.11) exits with the byte count of its netlink
// request after a listing, not 0.
func cangwList(t *testing.T, cangw string) string {
	t.Helper()
	out, err := tryRun(cangw, "-L")
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("cangw -L: %v\n%s", err, out)
	}
	return out
}
