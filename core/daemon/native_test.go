package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/core/api"
)

// nativePlaybook: a reader whose grant asks to be a kernel interface, and a
// sender whose native grant has a send rate, which the kernel cannot enforce.
const nativePlaybook = `
stack "nat" {
  container "reader" {
    images = ["berth.local/busybox:1.35", "berth.local/cantool:1"]
    args   = ["dump", "body"]
    can "body" {
      bus     = "can0"
      receive = ["0x100-0x1FF"]
      native  = true
    }
  }
  container "sender" {
    images  = ["berth.local/busybox:1.35", "berth.local/cantool:1"]
    command = ["sleep", "3600"]
    can "tx" {
      bus       = "can0"
      send      = ["0x123"]
      send_rate = 50
      native    = true
    }
  }
}
`

// On a kernel without vxcan and can-gw (this host's), and on the sim
// board, whose buses are no kernel interfaces anyway, a native grant is
// served through the broker: berthd says so once per grant with the
// reason, and the container gets its device socket and works as before.
func TestNativeGrantFallsBackToBroker(t *testing.T) {
	needRoot(t)
	b := newBerthd(t, "--board", simBoard(t, ""), "--plugin-dir", binDir)
	if !strings.Contains(b.log.String(), "native CAN unavailable") {
		t.Fatalf("berthd did not say at start whether native CAN is available:\n%s", b.log)
	}
	b.importImages("busybox", "cantool")
	b.mustBerth("up", writePlaybook(t, nativePlaybook))
	b.waitFor("2 running", func(cs map[string]api.ContainerStatus) bool {
		return cs["reader"].State == "running" && cs["sender"].State == "running"
	})

	// One line per grant naming container, grant and why.
	for _, grant := range []string{"body", "tx"} {
		line := logLine(b, "native CAN grant served through the broker", "grant="+grant)
		if line == "" {
			t.Fatalf("no fallback line for grant %s:\n%s", grant, b.log)
		}
		t.Log(line)
		if !strings.Contains(line, "container=nat/") || !strings.Contains(line, "reason=") || !strings.Contains(line, "native CAN not supported") {
			t.Errorf("fallback line for grant %s lacks the container or the reason: %s", grant, line)
		}
	}

	// The broker serves the grant through the device socket, filters and all.
	waitSessions(t, b, 1)
	op := operatorBus(t, b)
	send(t, op, 0x250, 0x02)
	send(t, op, 0x150, 0x01)
	waitLog(t, b, "reader", "body 150#01")
	if out, _ := b.berth("logs", "reader"); strings.Contains(out, "250#") {
		t.Errorf("reader received 0x250 outside its grant:\n%s", out)
	}
	if out := b.mustBerth("exec", "sender", "cantool", "send", "tx", "123#AA"); !strings.Contains(out, "sent 123#AA") {
		t.Errorf("send through the broker: %s", out)
	}
	waitLog(t, b, "reader", "body 123#AA")

	// Nothing native was made: the sessions are broker sessions, the
	// container has no CAN interface, and berth made no namespace for it.
	ds, err := b.client.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ds.Devices[0].Sessions {
		if strings.Contains(s.Grant, "native") {
			t.Errorf("a native session on a host without native CAN: %+v", s)
		}
	}
	if out := b.mustBerth("exec", "reader", "ls", "/sys/class/net"); strings.TrimSpace(out) != "lo" {
		t.Errorf("reader's interfaces: %q, want lo only", out)
	}
	if _, err := os.Stat(filepath.Join(b.run, "netns", "nat+reader")); err == nil {
		t.Errorf("berth made a network namespace for a grant it serves through the broker")
	}
	b.mustBerth("down", "nat")
}

// logLine returns the first line of berthd's log holding every want, or "".
func logLine(b *berthd, want ...string) string {
	deadline := time.Now().Add(10 * time.Second)
	for {
	lines:
		for _, l := range strings.Split(b.log.String(), "\n") {
			for _, w := range want {
				if !strings.Contains(l, w) {
					continue lines
				}
			}
			return l
		}
		if time.Now().After(deadline) {
			return ""
		}
		time.Sleep(50 * time.Millisecond)
	}
}
