package stack

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/core/playbook"
	"github.com/berth-io/berth/core/update"
)

const threeTier = `
stack "demo" {
  container "db" {
    images = ["busybox", "kvdb"]
    health {
      exec     = ["kvdb", "-ping"]
      interval     = "20ms"
      retries      = 2
      start_period = "5s"
    }
    restart { policy = "never" }
  }
  container "app" {
    images = ["busybox", "app"]
    depends_on "db" { condition = "healthy" }
    restart { policy = "never" }
  }
  container "ui" {
    images = ["busybox", "ui"]
    depends_on "app" {}
    restart { policy = "never" }
  }
}
`

type harness struct {
	t      *testing.T
	m      *Manager
	d      *fakeDriver
	gens   *update.Store
	cancel context.CancelFunc
}

func newHarness(t *testing.T, d *fakeDriver) *harness {
	t.Helper()
	gens, err := update.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	life, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &harness{t: t, d: d, gens: gens, cancel: cancel,
		m: NewManager(life, d, fakeImages{}, gens, log)}
	t.Cleanup(func() { cancel(); h.m.Shutdown() })
	return h
}

func (h *harness) up(src string) (*api.Plan, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.m.Up(ctx, api.ApplyRequest{File: "p.hcl", Source: []byte(src)}, nil)
}

// waitState waits up to 5 s for a container to reach a state.
func (h *harness) waitState(name string, want State) {
	h.t.Helper()
	c, err := h.m.find(name)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.waitFor(ctx, func() bool { return c.state == want }); err != nil {
		h.t.Fatalf("%s: state %s, want %s", name, c.currentState(), want)
	}
}

func indexOf(events []string, e string) int { return slices.Index(events, e) }

func TestUpStartsInDependencyOrderAndWaitsForHealth(t *testing.T) {
	d := newFakeDriver()
	ready := make(chan struct{})
	d.healthy = func(name string) bool {
		select {
		case <-ready:
			return true
		default:
			return false
		}
	}
	h := newHarness(t, d)
	done := make(chan error, 1)
	go func() { _, err := h.up(threeTier); done <- err }()

	if got := <-d.started; got != "db" {
		t.Fatalf("first started %q, want db", got)
	}
	select {
	case got := <-d.started:
		t.Fatalf("%s started before db was healthy", got)
	case <-time.After(100 * time.Millisecond): // several failing checks
	}
	close(ready)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ev := d.log()
	if !(indexOf(ev, "start db") < indexOf(ev, "start app") && indexOf(ev, "start app") < indexOf(ev, "start ui")) {
		t.Fatalf("start order wrong: %v", ev)
	}
	for _, name := range []string{"db", "app", "ui"} {
		if p := indexOf(ev, "prepare "+name); p < 0 || p > indexOf(ev, "start "+name) {
			t.Fatalf("%s not prepared before its start: %v", name, ev)
		}
	}
	ps := h.m.Containers(context.Background())
	if len(ps) != 3 || ps[0].Name != "db" || ps[0].State != "running" || ps[0].Health != "healthy" {
		t.Fatalf("ps = %+v", ps)
	}
}

func TestUnhealthyDependencyFailsDependents(t *testing.T) {
	d := newFakeDriver()
	d.healthy = func(string) bool { return false }
	h := newHarness(t, d)
	_, err := h.up(strings.Replace(threeTier, `start_period = "5s"`, "", 1))
	if err == nil {
		t.Fatal("Up succeeded with a dependency that never gets healthy")
	}
	for _, want := range []string{"container app", "db is unhealthy", "health check failed 2 times", "not ready", "container ui"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if slices.Contains(d.log(), "start app") {
		t.Fatal("app started although db is unhealthy")
	}
}

func TestDownStopsDependentsFirst(t *testing.T) {
	d := newFakeDriver()
	h := newHarness(t, d)
	if _, err := h.up(threeTier); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Down(context.Background(), "demo", nil); err != nil {
		t.Fatal(err)
	}
	ev := d.log()
	ui, app, db := indexOf(ev, "kill ui SIGTERM"), indexOf(ev, "kill app SIGTERM"), indexOf(ev, "kill db SIGTERM")
	if ui < 0 || app < 0 || db < 0 || !(ui < app && app < db) {
		t.Fatalf("stop order wrong: %v", ev)
	}
	if indexOf(ev, "remove-stack demo") < 0 {
		t.Fatalf("stack not removed: %v", ev)
	}
	if len(h.m.Containers(context.Background())) != 0 {
		t.Fatal("containers listed after down")
	}
	if _, err := h.gens.Current("demo"); !errors.Is(err, update.ErrNotFound) {
		t.Fatalf("generation still current after down: %v", err)
	}
	if err := h.m.Down(context.Background(), "demo", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second down = %v, want ErrNotFound", err)
	}
}

func TestStopKillsContainerThatIgnoresSignal(t *testing.T) {
	d := newFakeDriver()
	d.ignore["stubborn"] = true
	h := newHarness(t, d)
	if _, err := h.up(`stack "s" {
  container "stubborn" {
    images = ["busybox"]
    stop {
      signal  = "SIGINT"
      timeout = "50ms"
    }
  }
}`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := h.m.Down(context.Background(), "s", nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Fatalf("killed after %s, before the stop timeout", took)
	}
	ev := d.log()
	if indexOf(ev, "kill stubborn SIGINT") < 0 || indexOf(ev, "kill stubborn SIGKILL") < indexOf(ev, "kill stubborn SIGINT") {
		t.Fatalf("want SIGINT then SIGKILL: %v", ev)
	}
}

func TestRestartPolicyWithBackoffAndAttempts(t *testing.T) {
	d := newFakeDriver()
	h := newHarness(t, d)
	if _, err := h.up(`stack "s" {
  container "crashy" {
    images = ["busybox"]
    restart {
      policy    = "on-failure"
      attempts  = 2
      delay     = "10ms"
      max_delay = "15ms"
    }
  }
}`); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		<-d.started
		d.last("crashy").exit(Exit{Code: 3})
	}
	h.waitState("crashy", StateFailed)
	ps := h.m.Containers(context.Background())
	if ps[0].Restarts != 2 || ps[0].ExitCode != 3 {
		t.Fatalf("ps = %+v, want 2 restarts and exit code 3", ps[0])
	}
}

func TestOnFailureLeavesCleanExitDown(t *testing.T) {
	d := newFakeDriver()
	h := newHarness(t, d)
	if _, err := h.up(`stack "s" {
  container "job" { images = ["busybox"] }
}`); err != nil {
		t.Fatal(err)
	}
	d.last("job").exit(Exit{Code: 0})
	h.waitState("job", StateExited)
}

func TestAlwaysRestartsCleanExit(t *testing.T) {
	d := newFakeDriver()
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
	first := d.last("svc")
	first.exit(Exit{Code: 0})
	select {
	case <-d.started:
	case <-time.After(5 * time.Second):
		t.Fatal("not restarted after a clean exit with policy always")
	}
}

func TestStartErrorIsReported(t *testing.T) {
	d := newFakeDriver()
	d.startFn = func(s *Spec) error {
		return errors.New(`exec: "/bin/nope": no such file or directory`)
	}
	h := newHarness(t, d)
	_, err := h.up(`stack "s" {
  container "broken" {
    images = ["busybox"]
    restart { policy = "never" }
  }
}`)
	if err == nil || !strings.Contains(err.Error(), "container broken") || !strings.Contains(err.Error(), "/bin/nope") {
		t.Fatalf("Up error = %v, want the start failure named", err)
	}
	// ps says why it is not running.
	if ps := h.m.Containers(context.Background()); len(ps) != 1 || !strings.Contains(ps[0].Message, "/bin/nope") {
		t.Fatalf("ps = %+v, want the start error as its message", ps)
	}
}

func TestPlanSaysWhatChanges(t *testing.T) {
	d := newFakeDriver()
	h := newHarness(t, d)
	if _, err := h.up(threeTier); err != nil {
		t.Fatal(err)
	}
	next := strings.Replace(threeTier, `["busybox", "app"]`, `["busybox", "app2"]`, 1)
	next = strings.Replace(next, `container "ui" {
    images = ["busybox", "ui"]
    depends_on "app" {}
    restart { policy = "never" }
  }`, `container "extra" {
    images = ["busybox"]
  }`, 1)
	plan, err := h.m.Plan(context.Background(), api.ApplyRequest{File: "p.hcl", Source: []byte(next)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]api.Action{
		"db":    {Container: "db", Kind: api.ActionUnchanged},
		"app":   {Container: "app", Kind: api.ActionReplace, Reason: "images changed"},
		"extra": {Container: "extra", Kind: api.ActionCreate},
		"ui":    {Container: "ui", Kind: api.ActionRemove},
	}
	if len(plan.Actions) != len(want) {
		t.Fatalf("plan = %+v", plan.Actions)
	}
	for _, a := range plan.Actions {
		if a != want[a.Container] {
			t.Errorf("action %+v, want %+v", a, want[a.Container])
		}
	}
	// Applying it replaces app and removes ui; db keeps running untouched.
	if _, err := h.up(next); err != nil {
		t.Fatal(err)
	}
	ev := d.log()
	if n := strings.Count(strings.Join(ev, "\n"), "start db"); n != 1 {
		t.Fatalf("db started %d times, want once: %v", n, ev)
	}
	if indexOf(ev, "remove ui") < 0 || indexOf(ev, "remove app") < 0 {
		t.Fatalf("ui/app not removed: %v", ev)
	}
	// db keeps running and learns of the new containers through its hosts.
	if c := indexOf(ev, "connect 1"); c < 0 || c > indexOf(ev, "start extra") {
		t.Fatalf("kept container not connected before the new ones start: %v", ev)
	}
}

func TestMissingImageIsADiagnostic(t *testing.T) {
	d := newFakeDriver()
	h := newHarness(t, d)
	h.m.images = fakeImages{missing: map[string]bool{"kvdb": true}}
	_, err := h.up(threeTier)
	var de *api.DiagnosticsError
	if !errors.As(err, &de) {
		t.Fatalf("Up error = %v, want diagnostics", err)
	}
	if len(de.Diags) != 1 || !strings.Contains(de.Diags[0].Error(), "kvdb") || de.Diags[0].Subject == nil || de.Diags[0].Subject.Start.Line != 4 {
		t.Fatalf("diagnostics = %v, want one naming kvdb at line 4", de.Diags)
	}
	if len(d.log()) != 0 {
		t.Fatalf("driver called despite the missing image: %v", d.log())
	}
}

func TestRestoreAdoptsRunningContainers(t *testing.T) {
	d := newFakeDriver()
	h := newHarness(t, d)
	if _, err := h.up(threeTier); err != nil {
		t.Fatal(err)
	}
	// berthd goes away; its containers keep running.
	h.cancel()
	h.m.Shutdown()

	d2 := newFakeDriver()
	for _, name := range []string{"db", "app"} {
		d2.adopt[name] = d.last(name)
	}
	life, cancel := context.WithCancel(context.Background())
	defer cancel()
	m2 := NewManager(life, d2, fakeImages{}, h.gens, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := m2.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	// ui was not found: it is started again, after app.
	select {
	case got := <-d2.started:
		if got != "ui" {
			t.Fatalf("started %q, want ui", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ui not started on restore")
	}
	ev := d2.log()
	if indexOf(ev, "adopt db") < 0 || indexOf(ev, "adopt app") < 0 {
		t.Fatalf("not adopted: %v", ev)
	}
	if slices.Contains(ev, "start db") || slices.Contains(ev, "start app") {
		t.Fatalf("adopted containers started again: %v", ev)
	}
	// A running container is taken as it is: preparing it again would
	// replace its network links under it.
	if slices.Contains(ev, "prepare db") || slices.Contains(ev, "prepare app") || !slices.Contains(ev, "prepare ui") {
		t.Fatalf("want only ui prepared: %v", ev)
	}
}

func TestPauseResume(t *testing.T) {
	d := newFakeDriver()
	h := newHarness(t, d)
	if _, err := h.up(`stack "s" {
  container "a" { images = ["busybox"] }
}`); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := h.m.Resume(ctx, "a"); !errors.Is(err, ErrState) {
		t.Fatalf("resume of running = %v, want ErrState", err)
	}
	if err := h.m.Pause(ctx, "s/a"); err != nil {
		t.Fatal(err)
	}
	if !d.last("a").paused {
		t.Fatal("task not paused")
	}
	if ps := h.m.Containers(ctx); ps[0].State != "paused" {
		t.Fatalf("state %s, want paused", ps[0].State)
	}
	if err := h.m.Resume(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Pause(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pause of unknown = %v, want ErrNotFound", err)
	}
}

func TestBackoff(t *testing.T) {
	r := playbook.Restart{Delay: 100 * time.Millisecond, MaxDelay: time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		if got := Backoff(r, n); got != want {
			t.Errorf("Backoff(n=%d) = %s, want %s", n, got, want)
		}
	}
}
