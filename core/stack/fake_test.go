package stack

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/berth-io/berth/core/image"
	"github.com/berth-io/berth/core/playbook"
)

// fakeDriver runs no processes: each Start makes a fakeTask the test can
// end with exit(). It records the order of calls.
type fakeDriver struct {
	mu      sync.Mutex
	events  []string
	tasks   map[string][]*fakeTask
	startFn func(s *Spec) error      // optional: fail (or hold) a start
	prepFn  func(s *Spec) error      // optional: fail (or hold) a prepare
	rmStack func(st *playbook.Stack) // optional: hold a RemoveStack
	healthy func(name string) bool   // optional: health check result
	ignore  map[string]bool          // containers that ignore their stop signal
	started chan string              // receives each started container's name
	adopt   map[string]*fakeTask     // tasks Adopt finds
}

func newFakeDriver() *fakeDriver {
	return &fakeDriver{tasks: map[string][]*fakeTask{}, ignore: map[string]bool{}, started: make(chan string, 100), adopt: map[string]*fakeTask{}}
}

func (d *fakeDriver) record(format string, args ...any) {
	d.mu.Lock()
	d.events = append(d.events, fmt.Sprintf(format, args...))
	d.mu.Unlock()
}

func (d *fakeDriver) log() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.events...)
}

func (d *fakeDriver) PrepareStack(ctx context.Context, st *playbook.Stack) error {
	d.record("prepare-stack %s", st.Name)
	return nil
}
func (d *fakeDriver) Prepare(ctx context.Context, s *Spec) error {
	if d.prepFn != nil {
		if err := d.prepFn(s); err != nil {
			d.record("prepare-failed %s", s.Container.Name)
			return err
		}
	}
	d.record("prepare %s", s.Container.Name)
	return nil
}
func (d *fakeDriver) Connect(ctx context.Context, specs []*Spec) error {
	d.record("connect %d", len(specs))
	return nil
}
func (d *fakeDriver) Start(ctx context.Context, s *Spec) (Task, error) {
	name := s.Container.Name
	if d.startFn != nil {
		if err := d.startFn(s); err != nil {
			d.record("start-failed %s", name)
			return nil, err
		}
	}
	t := &fakeTask{name: name, d: d, exited: make(chan struct{}), pid: 1000 + len(d.log())}
	d.mu.Lock()
	d.tasks[name] = append(d.tasks[name], t)
	d.events = append(d.events, "start "+name)
	d.mu.Unlock()
	d.started <- name
	return t, nil
}
func (d *fakeDriver) Adopt(ctx context.Context, s *Spec) (Task, error) {
	d.mu.Lock()
	t := d.adopt[s.Container.Name]
	d.mu.Unlock()
	if t == nil {
		return nil, fmt.Errorf("adopt %s: %w", s.Container.Name, ErrNotFound)
	}
	d.record("adopt %s", s.Container.Name)
	return t, nil
}
func (d *fakeDriver) Remove(ctx context.Context, s *Spec) error {
	d.record("remove %s", s.Container.Name)
	return nil
}
func (d *fakeDriver) RemoveStack(ctx context.Context, st *playbook.Stack) error {
	if d.rmStack != nil {
		d.rmStack(st)
	}
	d.record("remove-stack %s", st.Name)
	return nil
}
func (d *fakeDriver) Logs(ctx context.Context, s *Spec, tail int, follow bool, emit func(LogLine) error) error {
	return emit(LogLine{Time: time.Now(), Stream: "stdout", Text: "hello from " + s.Container.Name})
}

// last returns the newest task of a container.
func (d *fakeDriver) last(name string) *fakeTask {
	d.mu.Lock()
	defer d.mu.Unlock()
	ts := d.tasks[name]
	if len(ts) == 0 {
		return nil
	}
	return ts[len(ts)-1]
}

type fakeTask struct {
	name   string
	d      *fakeDriver
	pid    int
	once   sync.Once
	exited chan struct{}
	status Exit
	lost   error // Wait's error: the process was lost
	paused bool
}

func (t *fakeTask) exit(e Exit) {
	t.once.Do(func() {
		e.At = time.Now()
		t.status = e
		close(t.exited)
	})
}

// exitRaw ends the task with e as it is (At may be zero) and Wait's error.
func (t *fakeTask) exitRaw(e Exit, lost error) {
	t.once.Do(func() {
		t.status, t.lost = e, lost
		close(t.exited)
	})
}

func (t *fakeTask) Pid() int             { return t.pid }
func (t *fakeTask) StartedAt() time.Time { return time.Now() }
func (t *fakeTask) Wait(ctx context.Context) (Exit, error) {
	select {
	case <-t.exited:
		if t.lost != nil {
			return Exit{}, t.lost
		}
		return t.status, nil
	case <-ctx.Done():
		return Exit{}, ctx.Err()
	}
}
func (t *fakeTask) Kill(ctx context.Context, sig syscall.Signal) error {
	t.d.record("kill %s %s", t.name, unixSignalName(sig))
	if sig == syscall.SIGKILL || !t.d.ignore[t.name] {
		t.exit(Exit{Code: 128 + int(sig), Signal: unixSignalName(sig)})
	}
	return nil
}
func (t *fakeTask) Pause(ctx context.Context) error  { t.paused = true; return nil }
func (t *fakeTask) Resume(ctx context.Context) error { t.paused = false; return nil }
func (t *fakeTask) Exec(ctx context.Context, args, env []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if t.d.healthy != nil && !t.d.healthy(t.name) {
		fmt.Fprintln(stdout, "not ready")
		return 1, nil
	}
	return 0, nil
}
func (t *fakeTask) Delete(ctx context.Context) error { return nil }

func unixSignalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return sig.String()
}

// fakeImages resolves every reference to an image whose digest is derived
// from the reference, so a changed reference changes the digest.
type fakeImages struct{ missing map[string]bool }

func (f fakeImages) Resolve(ctx context.Context, ref string) (image.Image, error) {
	if f.missing[ref] {
		return image.Image{}, fmt.Errorf("%s: %w", ref, image.ErrNotFound)
	}
	return image.Image{Ref: ref, Digest: "sha256:" + hashOf(ref)}, nil
}
