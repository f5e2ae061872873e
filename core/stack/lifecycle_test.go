package stack

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/core/playbook"
	"github.com/berth-io/berth/core/update"
)

// healthGated is a stack whose app waits for db to be healthy; db's check
// fails for as long as the test's healthy func says.
const healthGated = `
stack "g" {
  container "db" {
    images = ["busybox"]
    health {
      exec         = ["ping"]
      interval     = "10ms"
      retries      = 1
      start_period = "1h"
    }
  }
  container "app" {
    images = ["busybox"]
    depends_on "db" { condition = "healthy" }
  }
}
`

// bounded runs f and fails the test when it has not returned within 5 s.
func bounded(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not return within 5s", what)
	}
}

// upBlocked starts an Up of healthGated that stays blocked waiting for db
// to get healthy, and returns once app waits for it.
func upBlocked(t *testing.T, h *harness) (end func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.m.Up(ctx, api.ApplyRequest{File: "p.hcl", Source: []byte(healthGated)}, nil)
	}()
	if got := <-h.d.started; got != "db" {
		t.Fatalf("started %q, want db", got)
	}
	t.Cleanup(func() { cancel(); <-done })
	return func() { cancel(); <-done }
}

func TestStopWhileWaitingForDependencyEndsStopped(t *testing.T) {
	d := newFakeDriver()
	d.healthy = func(string) bool { return false }
	h := newHarness(t, d)
	endUp := upBlocked(t, h)
	endUp() // the client went away; app still waits for db
	app, err := h.m.find("app")
	if err != nil {
		t.Fatal(err)
	}
	bounded(t, "Down", func() {
		if err := h.m.Down(context.Background(), "g", nil); err != nil {
			t.Error(err)
		}
	})
	app.mu.Lock()
	state, lastErr := app.state, app.lastErr
	app.mu.Unlock()
	if state != StateStopped || lastErr != nil {
		t.Fatalf("app after down: state %s, error %v; want stopped with no error", state, lastErr)
	}
	if slices.Contains(d.log(), "start app") {
		t.Fatal("app started after its stop")
	}
}

func TestStopDuringStartStopsTheNewProcess(t *testing.T) {
	d := newFakeDriver()
	gate := make(chan struct{})
	var starts int
	var mu sync.Mutex
	d.startFn = func(s *Spec) error {
		mu.Lock()
		starts++
		n := starts
		mu.Unlock()
		if n == 2 {
			<-gate // the restart hangs in the runtime until the test lets go
		}
		return nil
	}
	h := newHarness(t, d)
	if _, err := h.up(`stack "s" {
  container "svc" {
    images = ["busybox"]
    restart {
      policy = "always"
      delay  = "1ms"
    }
  }
}`); err != nil {
		t.Fatal(err)
	}
	<-d.started
	c, _ := h.m.find("svc")
	d.last("svc").exit(Exit{Code: 1})
	// Wait until the restart is inside Start.
	waitUntil(t, "restart to begin", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return starts == 2
	})
	downErr := make(chan error, 1)
	go func() { downErr <- h.m.Down(context.Background(), "s", nil) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.waitFor(ctx, func() bool { return c.stopping }); err != nil {
		t.Fatal("stop not called")
	}
	close(gate) // Start returns a process that stop never saw
	select {
	case err := <-downErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Down hangs on a container that started while it was stopped")
	}
	if st := c.currentState(); st != StateStopped {
		t.Fatalf("state %s, want stopped", st)
	}
	if ev := d.log(); indexOf(ev, "kill svc SIGTERM") < indexOf(ev, "start svc") {
		t.Fatalf("the new process was not signalled: %v", ev)
	}
}

// waitUntil polls cond for up to 5 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// blockedInLockStack reports whether a goroutine waits for a stack's apply
// lock.
func blockedInLockStack() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "(*Manager).lockStack") && strings.Contains(g, "sync.(*Mutex).Lock") {
			return true
		}
	}
	return false
}

func TestUpWaitingOnADownStartsAFreshStack(t *testing.T) {
	d := newFakeDriver()
	hold, held := make(chan struct{}), make(chan struct{})
	var once sync.Once
	d.rmStack = func(*playbook.Stack) {
		once.Do(func() { close(held); <-hold })
	}
	h := newHarness(t, d)
	src := `stack "s" {
  container "a" { images = ["busybox"] }
}`
	if _, err := h.up(src); err != nil {
		t.Fatal(err)
	}
	downErr := make(chan error, 1)
	go func() { downErr <- h.m.Down(context.Background(), "s", nil) }()
	<-held // Down holds the stack's lock
	upErr := make(chan error, 1)
	go func() { _, err := h.up(src); upErr <- err }()
	waitUntil(t, "Up to wait for the stack", blockedInLockStack)
	close(hold)
	if err := <-downErr; err != nil {
		t.Fatal(err)
	}
	if err := <-upErr; err != nil {
		t.Fatal(err)
	}
	ps := h.m.Containers(context.Background())
	if len(ps) != 1 || ps[0].State != "running" {
		t.Fatalf("after down then up: ps = %+v, want a running", ps)
	}
	bounded(t, "second Down", func() {
		if err := h.m.Down(context.Background(), "s", nil); err != nil {
			t.Error(err)
		}
	})
	if n := strings.Count(strings.Join(d.log(), "\n"), "kill a SIGTERM"); n != 2 {
		t.Fatalf("a stopped %d times, want twice: %v", n, d.log())
	}
}

func TestStatusReadsRaceNotWithUp(t *testing.T) {
	d := newFakeDriver()
	h := newHarness(t, d)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		req := api.ApplyRequest{File: "p.hcl", Source: []byte(threeTier)}
		for {
			select {
			case <-stop:
				return
			default:
			}
			h.m.Containers(context.Background())
			h.m.Plan(context.Background(), req)
			h.m.InUse("sha256:x")
			h.m.find("db")
		}
	}()
	for i := 0; i < 3; i++ {
		if _, err := h.up(threeTier); err != nil {
			t.Fatal(err)
		}
		if err := h.m.Down(context.Background(), "demo", nil); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestShutdownEndsDependencyWaiters(t *testing.T) {
	d := newFakeDriver()
	d.healthy = func(string) bool { return false }
	h := newHarness(t, d)
	endUp := upBlocked(t, h)
	// Shutdown alone (berthd's life still going) ends the supervisors and
	// app's wait for db.
	bounded(t, "Shutdown", h.m.Shutdown)
	endUp()
	if slices.Contains(d.log(), "kill db SIGTERM") {
		t.Fatal("Shutdown stopped a container")
	}
}

func TestFailedUpIsRecoveredByTheNextUp(t *testing.T) {
	d := newFakeDriver()
	var broken sync.Map
	broken.Store("app", true)
	d.prepFn = func(s *Spec) error {
		if _, ok := broken.Load(s.Container.Name); ok {
			return errors.New("no space left on device")
		}
		return nil
	}
	h := newHarness(t, d)
	_, err := h.up(threeTier)
	if err == nil {
		t.Fatal("Up succeeded although app could not be prepared")
	}
	for _, want := range []string{"container app", "prepare", "no space left", "container ui", "app is failed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The generation stays committed: it is what the user asked for.
	if g, err := h.gens.Current("demo"); err != nil || g.Number != 1 {
		t.Fatalf("current generation = %v, %v; want 1", g, err)
	}
	broken.Delete("app")
	plan, err := h.up(threeTier)
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	kinds := map[string]api.ActionKind{}
	for _, a := range plan.Actions {
		kinds[a.Container] = a.Kind
	}
	if kinds["db"] != api.ActionUnchanged || kinds["app"] != api.ActionReplace || kinds["ui"] != api.ActionReplace {
		t.Fatalf("plan = %+v", plan.Actions)
	}
	ev := d.log()
	if indexOf(ev, "remove app") < 0 || indexOf(ev, "remove app") > indexOf(ev, "start app") {
		t.Fatalf("failed app not removed before its new start: %v", ev)
	}
	for _, c := range h.m.Containers(context.Background()) {
		if c.State != "running" {
			t.Fatalf("%s is %s after the second Up", c.Name, c.State)
		}
	}
	if err := h.m.Down(context.Background(), "demo", nil); err != nil {
		t.Fatal(err)
	}
}

func TestFailedCommitLeavesNoStack(t *testing.T) {
	d := newFakeDriver()
	h := newHarness(t, d)
	dir := t.TempDir()
	gens, err := update.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A file where the stack's generations go: Commit cannot write.
	if err := os.WriteFile(filepath.Join(dir, "demo"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.m.gens = gens
	_, err = h.up(threeTier)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("Up = %v, want a commit error that says nothing changed", err)
	}
	if len(d.log()) != 0 {
		t.Fatalf("driver called although the commit failed: %v", d.log())
	}
	if err := h.m.Down(context.Background(), "demo", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Down after a failed Up = %v, want ErrNotFound", err)
	}
}

func TestAdoptedExitedContainerIsPreparedAndRestarted(t *testing.T) {
	d := newFakeDriver()
	h := newHarness(t, d)
	src := `stack "s" {
  container "svc" {
    images = ["busybox"]
    restart {
      policy = "on-failure"
      delay  = "1ms"
    }
  }
}`
	if _, err := h.up(src); err != nil {
		t.Fatal(err)
	}
	h.m.Shutdown()
	// While no berthd ran, svc failed; its monitor is gone, its status kept.
	old := d.last("svc")
	old.exit(Exit{Code: 2})

	d2 := newFakeDriver()
	d2.adopt["svc"] = old
	m2 := NewManager(context.Background(), d2, fakeImages{}, h.gens, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer m2.Shutdown()
	if err := m2.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d2.started:
	case <-time.After(5 * time.Second):
		t.Fatalf("adopted container that had failed was not restarted: %v", d2.log())
	}
	ev := d2.log()
	// A reboot may have taken its mounts and network namespace: this berthd
	// never prepared it, so it does before the restart.
	if p, s := indexOf(ev, "prepare svc"), indexOf(ev, "start svc"); p < 0 || p > s {
		t.Fatalf("want prepare before the restart: %v", ev)
	}
}

func TestLostProcessCountsAsFailedExitWithATime(t *testing.T) {
	d := newFakeDriver()
	h := newHarness(t, d)
	if _, err := h.up(`stack "s" {
  container "a" {
    images = ["busybox"]
    restart { policy = "never" }
  }
}`); err != nil {
		t.Fatal(err)
	}
	d.last("a").exitRaw(Exit{}, errors.New("monitor lost"))
	h.waitState("a", StateExited)
	ps := h.m.Containers(context.Background())
	if ps[0].ExitCode != -1 || ps[0].FinishedAt.IsZero() {
		t.Fatalf("ps = %+v, want exit code -1 and a finish time", ps[0])
	}
}

func TestExitWithoutTimeGetsOne(t *testing.T) {
	d := newFakeDriver()
	h := newHarness(t, d)
	if _, err := h.up(`stack "s" {
  container "a" {
    images = ["busybox"]
    restart { policy = "never" }
  }
}`); err != nil {
		t.Fatal(err)
	}
	d.last("a").exitRaw(Exit{Code: 1}, nil)
	h.waitState("a", StateExited)
	if ps := h.m.Containers(context.Background()); ps[0].FinishedAt.IsZero() {
		t.Fatalf("FinishedAt is zero: %+v", ps[0])
	}
}

func TestBackoffDoesNotOverflow(t *testing.T) {
	tests := []struct {
		r    playbook.Restart
		n    int
		want time.Duration
	}{
		{playbook.Restart{Delay: time.Second, MaxDelay: math.MaxInt64}, 100, math.MaxInt64},
		{playbook.Restart{Delay: time.Second}, 100, time.Second},
		{playbook.Restart{MaxDelay: time.Second}, 5, 0},
	}
	for _, tt := range tests {
		if got := Backoff(tt.r, tt.n); got != tt.want {
			t.Errorf("Backoff(%+v, %d) = %s, want %s", tt.r, tt.n, got, tt.want)
		}
	}
}
