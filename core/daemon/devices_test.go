package daemon_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/canwire"
)

// simBoard writes a board like board-support/sim's: two buses of the
// userspace vcan plugin. Its hub socket is abstract, so each test's berthd,
// in its own network namespace, has a bus of its own.
func simBoard(t *testing.T, pluginLine string) string {
	t.Helper()
	if pluginLine == "" {
		pluginLine = `path = "berth-plugin-vcan"`
	}
	src := fmt.Sprintf(`board "test" {
  plugin "vcan" {
    %s
    config {
      socket = "@berth-vcan-test"
      buses  = { vcan0 = {}, vcan1 = {} }
    }
  }
  device "can0" {
    class  = "can"
    plugin = "vcan"
    id     = "vcan0"
  }
  device "can1" {
    class  = "can"
    plugin = "vcan"
    id     = "vcan1"
  }
}
`, pluginLine)
	p := filepath.Join(t.TempDir(), "board.hcl")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// grantsPlaybook: two readers with different receive filters on can0, and a
// sender that may send only 0x123, at most 50 frames/s with bursts of 5.
const grantsPlaybook = `
stack "cars" {
  container "reader-a" {
    images = ["berth.local/busybox:1.35", "berth.local/cantool:1"]
    args   = ["dump", "a"]
    can "a" {
      bus     = "can0"
      receive = ["0x100-0x1FF"]
    }
  }
  container "reader-b" {
    images = ["berth.local/busybox:1.35", "berth.local/cantool:1"]
    args   = ["dump", "b"]
    can "b" {
      bus     = "can0"
      receive = ["0x200-0x2FF"]
    }
  }
  container "sender" {
    images  = ["berth.local/busybox:1.35", "berth.local/cantool:1"]
    command = ["sleep", "3600"]
    can "tx" {
      bus        = "can0"
      send       = ["0x123"]
      send_rate  = 50
      send_burst = 5
    }
  }
}
`

// operatorBus opens can0 on berthd's operator CAN socket, as `berth can` does.
func operatorBus(t *testing.T, b *berthd) *canwire.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bus, err := canwire.OpenBus(ctx, api.CANSocket(b.socket), "can0")
	if err != nil {
		t.Fatalf("open can0 on the operator socket: %v\nberthd log:\n%s", err, b.log)
	}
	t.Cleanup(func() { bus.Close() })
	return bus
}

func send(t *testing.T, bus can.Bus, id uint32, data ...byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.Send(ctx, can.Frame{ID: id, Data: data}); err != nil {
		t.Fatalf("send 0x%X: %v", id, err)
	}
}

func TestGrantsAreEnforcedInRealContainers(t *testing.T) {
	needRoot(t)
	b := newBerthd(t, "--board", simBoard(t, ""), "--plugin-dir", binDir)
	b.importImages("busybox", "cantool")
	b.mustBerth("up", writePlaybook(t, grantsPlaybook))
	b.waitFor("3 running", func(cs map[string]api.ContainerStatus) bool {
		return cs["reader-a"].State == "running" && cs["reader-b"].State == "running" && cs["sender"].State == "running"
	})
	waitSessions(t, b, 2) // both readers have opened their device socket

	// Receive filters: each reader gets its own range and nothing else.
	op := operatorBus(t, b)
	send(t, op, 0x150, 0x01)
	send(t, op, 0x250, 0x02)
	send(t, op, 0x350, 0x03)
	waitLog(t, b, "reader-a", "a 150#01")
	waitLog(t, b, "reader-b", "b 250#02")
	time.Sleep(200 * time.Millisecond)
	a, _ := b.berth("logs", "reader-a")
	bl, _ := b.berth("logs", "reader-b")
	for _, bad := range []string{"250#", "350#"} {
		if strings.Contains(a, bad) {
			t.Errorf("reader-a received %s outside its grant:\n%s", bad, a)
		}
	}
	for _, bad := range []string{"150#", "350#"} {
		if strings.Contains(bl, bad) {
			t.Errorf("reader-b received %s outside its grant:\n%s", bad, bl)
		}
	}

	// Send grant: 0x123 goes out (reader-a and the operator see it),
	// 0x124 is refused with a message naming the container and grant.
	rxCtx, stopRx := context.WithTimeout(context.Background(), 20*time.Second)
	defer stopRx()
	rx, err := op.Receive(rxCtx)
	if err != nil {
		t.Fatal(err)
	}
	out := b.mustBerth("exec", "sender", "cantool", "send", "tx", "123#AA")
	if !strings.Contains(out, "sent 123#AA") {
		t.Errorf("send 123#AA: %s", out)
	}
	waitLog(t, b, "reader-a", "a 123#AA")
	out, code := b.berth("exec", "sender", "cantool", "send", "tx", "124#BB")
	if code == 0 || !strings.Contains(out, `grant "tx" does not allow sending 0x124`) || !strings.Contains(out, "cars/sender") {
		t.Errorf("send of an ungranted ID: exit %d\n%s", code, out)
	}
	for seen := false; !seen; {
		fs, err := rx.Recv()
		if err != nil {
			t.Fatalf("operator never saw 0x123: %v", err)
		}
		for _, f := range fs {
			if f.ID == 0x124 {
				t.Fatalf("the ungranted 0x124 reached the bus")
			}
			seen = seen || f.ID == 0x123
		}
	}

	// Send rate: 30 frames at 50/s with a burst of 5 take at least 0.5 s.
	out = b.mustBerth("exec", "sender", "cantool", "flood", "tx", "123#01", "30")
	m := regexp.MustCompile(`sent (\d+) refused (\d+) in (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("flood: %s", out)
	}
	took, _ := time.ParseDuration(m[3])
	if m[1] != "30" || took < 450*time.Millisecond {
		t.Errorf("flood of 30 frames at 50/s burst 5: sent %s refused %s in %v; want 30 sent in >= 0.5 s", m[1], m[2], took)
	}

	// A container sees its own device socket only, and only its grants.
	out = b.mustBerth("exec", "reader-a", "ls", "/run/berth")
	if strings.TrimSpace(out) != "device.sock" {
		t.Errorf("reader-a's /run/berth holds %q, want only device.sock", out)
	}
	out, code = b.berth("exec", "reader-a", "cantool", "dump", "b", "-n", "1")
	if code == 0 || !strings.Contains(out, `no CAN grant "b"`) {
		t.Errorf("reader-a opening reader-b's grant: exit %d\n%s", code, out)
	}

	// berth devices shows the sessions and their counters.
	out = b.mustBerth("devices")
	for _, want := range []string{"can0", "vcan", "healthy", "cars/reader-a", "cars/reader-b", "berth can"} {
		if !strings.Contains(out, want) {
			t.Errorf("berth devices lacks %q:\n%s", want, out)
		}
	}
	ds, err := b.client.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// reader-a got 0x150, 0x123 and the 30 flooded 0x123 frames; reader-b
	// got 0x250; both kept up.
	want := map[string]uint64{"cars/reader-a": 32, "cars/reader-b": 1}
	for _, s := range ds.Devices[0].Sessions {
		if min, ok := want[s.Container]; ok {
			if s.Delivered < min || s.Dropped != 0 || s.Received != s.Delivered {
				t.Errorf("session of %s: %+v; want at least %d delivered, none dropped", s.Container, s, min)
			}
			delete(want, s.Container)
		}
	}
	if len(want) != 0 {
		t.Errorf("berth devices lacks the sessions of %v: %+v", want, ds.Devices[0].Sessions)
	}
	// The sender's sessions (one per `cantool send` or flood) closed, and
	// their counts stay: 123#AA and the flood's 30 sent, 124#BB refused.
	var sender *api.DeviceSession
	for i, s := range ds.Devices[0].Sessions {
		if s.Container == "cars/sender" && s.Grant == "tx" {
			sender = &ds.Devices[0].Sessions[i]
		}
	}
	if sender == nil || sender.Open != 0 || sender.Sent != 31 || sender.Refused != 1 {
		t.Errorf("cars/sender's grant tx in berth devices: %+v, want 0 open, 31 sent, 1 refused", sender)
	}
}

// sendUntilLogged sends frames with id (a counter as data) every 200 ms
// until container logs want, for up to 20 s: sends fail while a plugin is
// down, and a session that is reconnecting misses what is sent meanwhile.
func sendUntilLogged(t *testing.T, b *berthd, bus can.Bus, id uint32, container, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		bus.Send(ctx, can.Frame{ID: id, Data: []byte{byte(i)}})
		cancel()
		out, _ := b.berth("logs", container)
		if strings.Contains(out, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q:\n%s\nberthd:\n%s", container, want, out, b.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitSessions waits until can0 has at least n open container sessions.
func waitSessions(t *testing.T, b *berthd, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds, err := b.client.Devices(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		open := 0
		if len(ds.Devices) > 0 {
			for _, s := range ds.Devices[0].Sessions {
				open += s.Open
			}
		}
		if open >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("can0 has %+v sessions, want %d\nberthd log:\n%s", ds, n, b.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pluginPid finds the vcan plugin process berthd started.
func pluginPid(t *testing.T, b *berthd) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(b.cmd.Process.Pid) && strings.Contains(string(stat), "(berth-plugin-vc") {
			return pid
		}
	}
	t.Fatalf("no vcan plugin process under berthd %d", b.cmd.Process.Pid)
	return 0
}

func TestPluginCrashMidStreamKeepsContainers(t *testing.T) {
	needRoot(t)
	b := newBerthd(t, "--board", simBoard(t, ""), "--plugin-dir", binDir)
	b.importImages("busybox", "cantool")
	b.mustBerth("up", writePlaybook(t, grantsPlaybook))
	b.waitFor("readers running", func(cs map[string]api.ContainerStatus) bool {
		return cs["reader-a"].State == "running" && cs["reader-b"].State == "running"
	})
	waitSessions(t, b, 2)
	op := operatorBus(t, b)
	send(t, op, 0x101, 0x01)
	waitLog(t, b, "reader-a", "a 101#01")

	old := pluginPid(t, b)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The plugin comes back; the same container session sees new frames.
	sendUntilLogged(t, b, op, 0x102, "reader-a", "a 102#")
	if pluginPid(t, b) == old {
		t.Error("the plugin was not restarted")
	}
	cs := b.containers()
	for _, n := range []string{"reader-a", "reader-b"} {
		if cs[n].Restarts != 0 || cs[n].State != "running" {
			t.Errorf("%s after the plugin crash: %+v; want running, never restarted", n, cs[n])
		}
	}
	if !strings.Contains(b.log.String(), "plugin=vcan") {
		t.Errorf("berthd's log has no line from the vcan plugin:\n%s", b.log)
	}
}

func TestBadBoardStopsBerthd(t *testing.T) {
	needRoot(t)
	for name, tc := range map[string]struct{ plugin, want, at string }{
		"missing plugin": {`path = "berth-plugin-nope"`, "berth-plugin-nope", "board.hcl:3"},
		"wrong checksum": {`path = "berth-plugin-vcan"
    sha256 = "0000000000000000000000000000000000000000000000000000000000000000"`, "checksum mismatch", "board.hcl:4"},
	} {
		t.Run(name, func(t *testing.T) {
			board := simBoard(t, tc.plugin)
			cmd := exec.Command(filepath.Join(binDir, "berthd"), "--state-dir", t.TempDir(), "--run-dir", t.TempDir(),
				"--runtime", "runc", "--board", board, "--plugin-dir", binDir)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("berthd started with a bad board:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), tc.at) {
				t.Errorf("berthd's error does not name %q at %s:\n%s", tc.want, tc.at, out)
			}
		})
	}
}

func TestGrantOnUnknownBusRefusedAtPlan(t *testing.T) {
	needRoot(t)
	b := newBerthd(t, "--board", simBoard(t, ""), "--plugin-dir", binDir)
	b.importImages("busybox", "cantool")
	pb := writePlaybook(t, strings.Replace(grantsPlaybook, `bus     = "can0"
      receive = ["0x100-0x1FF"]`, `bus     = "can7"
      receive = ["0x100-0x1FF"]`, 1))
	out, code := b.berth("plan", pb)
	if code == 0 || !strings.Contains(out, "Unknown CAN bus") || !strings.Contains(out, "playbook.hcl line 7") || !strings.Contains(out, `Did you mean "can0"?`) {
		t.Errorf("plan with a grant on can7: exit %d\n%s", code, out)
	}
}
