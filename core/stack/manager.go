// Package stack owns running stacks: it turns a playbook into running
// containers and keeps them so. It plans what an apply changes, starts
// containers in dependency order (in parallel where the order allows),
// waits for health where a dependent asks, applies restart policies with
// exponential back-off, stops in reverse order, and re-adopts the containers
// an earlier berthd left running. The work on one container is a Driver's.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/core/image"
	"github.com/berth-io/berth/core/playbook"
	"github.com/berth-io/berth/core/update"
)

// The API's sentinels, wrapped with %w by every error that means them.
var (
	ErrNotFound = api.ErrNotFound
	ErrState    = api.ErrConflict // e.g. pausing a container that is not running
)

// ImageResolver finds an image in the local store by reference or digest;
// its error wraps image.ErrNotFound when it has none.
type ImageResolver interface {
	Resolve(ctx context.Context, ref string) (image.Image, error)
}

// Manager runs every stack of one berthd. It is safe for concurrent use.
type Manager struct {
	driver Driver
	images ImageResolver
	gens   *update.Store
	log    *slog.Logger
	check  func(*playbook.Playbook) hcl.Diagnostics // nil: none
	// life bounds the supervisors: when it ends (berthd stops, or
	// Shutdown), they stop watching and the containers keep running.
	life context.Context
	end  context.CancelFunc

	// mu guards stacks and, of each running, pb, containers and removed.
	// Lock order: running.apply, then mu, then a container's mu.
	mu     sync.Mutex
	stacks map[string]*running
}

// running is one stack that is up. Its fields change only with apply held
// and Manager.mu held too, so holding either is enough to read them.
type running struct {
	apply      sync.Mutex // serialises up and down of this stack
	pb         *playbook.Playbook
	containers map[string]*container
	removed    bool // taken out of Manager.stacks by Down: no longer used
}

// ManagerOption configures [NewManager].
type ManagerOption func(*Manager)

// WithPlaybookCheck has Plan and Up refuse a playbook for which check
// reports errors, after it parses and before its images are looked up:
// berthd checks the grants against its board there.
func WithPlaybookCheck(check func(*playbook.Playbook) hcl.Diagnostics) ManagerOption {
	return func(m *Manager) { m.check = check }
}

// NewManager returns a Manager whose supervisors live as long as life, or
// until Shutdown.
func NewManager(life context.Context, d Driver, images ImageResolver, gens *update.Store, log *slog.Logger, opts ...ManagerOption) *Manager {
	life, end := context.WithCancel(life)
	m := &Manager{driver: d, images: images, gens: gens, log: log, life: life, end: end, stacks: map[string]*running{}}
	for _, o := range opts {
		o(m)
	}
	return m
}

// lockStack returns the stack's running record with its apply lock held,
// creating it when create is set; without create, it returns an error
// wrapping ErrNotFound when the stack is not up. It never returns a record
// that a Down took out while the caller waited for the lock.
func (m *Manager) lockStack(name string, create bool) (*running, error) {
	for {
		m.mu.Lock()
		r := m.stacks[name]
		if r == nil {
			if !create {
				m.mu.Unlock()
				return nil, fmt.Errorf("stack %q is not up (see `berth ps`): %w", name, ErrNotFound)
			}
			r = &running{containers: map[string]*container{}}
			m.stacks[name] = r
		}
		m.mu.Unlock()
		r.apply.Lock()
		if !r.removed {
			return r, nil
		}
		r.apply.Unlock()
	}
}

// dropIfEmpty forgets a stack record that an Up created but left with
// nothing in it (it failed before any container). Call with r.apply held.
func (m *Manager) dropIfEmpty(name string, r *running) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.pb == nil && len(r.containers) == 0 && m.stacks[name] == r {
		delete(m.stacks, name)
		r.removed = true
	}
}

// Restore brings back every stack that has a current generation: it
// re-adopts the containers an earlier berthd started, and starts those it
// cannot find. It does not wait for them to start.
func (m *Manager) Restore(ctx context.Context) error {
	names, err := m.gens.Stacks()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if err := m.restore(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("restore stack %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) restore(ctx context.Context, name string) error {
	gen, err := m.gens.Current(name)
	if err != nil {
		return err
	}
	pb, diags := playbook.Parse(gen.Source, gen.File, gen.Vars)
	if diags.HasErrors() {
		return &api.DiagnosticsError{Diags: diags}
	}
	specs, diags := m.resolve(ctx, pb, gen.Images)
	if diags.HasErrors() {
		return &api.DiagnosticsError{Diags: diags}
	}
	if err := m.driver.PrepareStack(ctx, pb.Stack); err != nil {
		return err
	}
	r := &running{pb: pb, containers: map[string]*container{}}
	for _, s := range specs {
		r.containers[s.Container.Name] = newContainer(s, m.driver, m.log)
	}
	m.mu.Lock()
	m.stacks[name] = r
	m.mu.Unlock()
	m.log.Info("restoring stack", "stack", name, "generation", gen.Number, "containers", len(specs))
	// Adopt what an earlier berthd left before returning, so that what
	// runs is known to the clean-ups that follow (links, native CAN) and
	// to the first `berth ps`; start the rest in the background.
	var fresh []*Spec
	for _, s := range specs {
		c := r.containers[s.Container.Name]
		task, err := m.driver.Adopt(m.life, s)
		switch {
		case err == nil:
			go c.supervise(m.life, task)
		case errors.Is(err, ErrNotFound):
			c.log.Info("not found to adopt; starting it")
			fresh = append(fresh, s)
		default:
			c.failStart(err)
		}
	}
	m.startAll(r, fresh)
	return nil
}

// Plan says what Up would change.
func (m *Manager) Plan(ctx context.Context, req api.ApplyRequest) (*api.Plan, error) {
	pb, specs, err := m.load(ctx, req)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	plan, _, _ := m.diff(m.stacks[pb.Stack.Name], pb, specs)
	return plan, nil
}

// Up applies a playbook: it records it as the stack's new generation, stops
// the containers it removes or replaces, and starts the new ones. It
// returns once every new container has started, or with every container
// that failed to.
//
// The generation is committed first, before any container changes, and
// stays committed when Up then fails: a generation records what the user
// asked for, not what came up, so a berthd restart after a failed Up
// brings back the playbook applied last (not a mix of two), and its failed
// containers are tried again. A second Up (of a fixed playbook, or the same
// one) replaces the containers that failed; Down removes them all. Rolling
// back is applying the earlier playbook again.
//
// When ctx ends, Up stops waiting and returns ctx.Err(); the containers go
// on starting.
func (m *Manager) Up(ctx context.Context, req api.ApplyRequest, progress func(api.Event)) (*api.Plan, error) {
	pb, specs, err := m.load(ctx, req)
	if err != nil {
		return nil, err
	}
	emit := emitter(progress)
	name := pb.Stack.Name

	r, err := m.lockStack(name, true)
	if err != nil {
		return nil, err
	}
	defer r.apply.Unlock()
	defer m.dropIfEmpty(name, r)

	m.mu.Lock()
	plan, gone, fresh := m.diff(r, pb, specs)
	m.mu.Unlock()
	digests := map[string]string{}
	for _, s := range specs {
		for i, ref := range s.Container.Images {
			digests[ref.Ref] = s.Images[i].Digest
		}
	}
	began := time.Now()
	gen := &update.Generation{Stack: name, File: req.File, Vars: req.Vars, Images: digests, AppliedAt: time.Now().UTC(), Source: req.Source}
	if cur, err := m.gens.Current(name); err == nil && !changes(plan) && cur.Same(gen) {
		emit("", fmt.Sprintf("stack %s: no changes (generation %d)", name, cur.Number))
		return plan, nil
	}
	if err := m.gens.Commit(gen); err != nil {
		return nil, fmt.Errorf("stack %s: %w; nothing was changed", name, err)
	}
	emit("", fmt.Sprintf("stack %s: generation %d", name, gen.Number))
	m.log.Debug("generation committed", "stack", name, "generation", gen.Number, "took", time.Since(began))

	// Stop what goes away, dependents first, then remove it.
	if len(gone) > 0 {
		if err := m.stopAll(ctx, gone, emit); err != nil {
			return plan, fmt.Errorf("stack %s: %w", name, err)
		}
		for _, c := range gone {
			if err := m.driver.Remove(ctx, c.spec); err != nil {
				return plan, fmt.Errorf("remove container %s: %w; run `berth up` again to retry", c.spec.Container.Name, err)
			}
			m.mu.Lock()
			if r.containers[c.spec.Container.Name] == c {
				delete(r.containers, c.spec.Container.Name)
			}
			m.mu.Unlock()
		}
	}
	m.mu.Lock()
	r.pb = pb
	m.mu.Unlock()
	// The stack's networks reserve every container's address, so each new
	// container's /etc/hosts names all the others from the start; the
	// containers that keep running learn the new ones here.
	if err := m.driver.PrepareStack(ctx, pb.Stack); err != nil {
		return plan, fmt.Errorf("prepare stack %s: %w; run `berth up` again to retry", name, err)
	}
	var kept []*Spec
	for _, c := range r.containers {
		kept = append(kept, c.spec)
	}
	if err := m.driver.Connect(ctx, kept); err != nil {
		return plan, fmt.Errorf("stack %s: update /etc/hosts of running containers: %w; run `berth up` again to retry", name, err)
	}
	m.mu.Lock()
	for _, s := range fresh {
		r.containers[s.Container.Name] = newContainer(s, m.driver, m.log)
	}
	m.mu.Unlock()
	for _, s := range fresh {
		emit(s.Container.Name, "created")
	}
	waits := m.startAll(r, fresh)
	var errs []error
	for _, s := range fresh {
		c := r.containers[s.Container.Name]
		select {
		case err := <-waits[s.Container.Name]:
			if err != nil {
				errs = append(errs, fmt.Errorf("container %s: %w", s.Container.Name, err))
				emit(s.Container.Name, "failed: "+err.Error())
				continue
			}
		case <-ctx.Done():
			return plan, ctx.Err()
		}
		c.mu.Lock()
		pid := 0
		if c.task != nil {
			pid = c.task.Pid()
		}
		c.mu.Unlock()
		emit(s.Container.Name, fmt.Sprintf("started (pid %d)", pid))
	}
	m.log.Debug("containers started", "stack", name, "count", len(fresh), "took", time.Since(began))
	return plan, errors.Join(errs...)
}

// Down stops every container of the stack, dependents first, removes them
// and the stack's networks, and keeps its persistent volumes. A Down that
// fails part-way leaves the stack listed, so it can be run again.
func (m *Manager) Down(ctx context.Context, name string, progress func(api.Event)) error {
	r, err := m.lockStack(name, false)
	if err != nil {
		return err
	}
	defer r.apply.Unlock()
	emit := emitter(progress)
	var all []*container
	for _, c := range r.containers {
		all = append(all, c)
	}
	var errs []error
	if err := m.stopAll(ctx, all, emit); err != nil {
		errs = append(errs, err)
	}
	for _, c := range all {
		select {
		case <-c.done:
		default:
			continue // did not stop: stopAll said so
		}
		if err := m.driver.Remove(ctx, c.spec); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.spec.Container.Name, err))
			continue
		}
		m.mu.Lock()
		delete(r.containers, c.spec.Container.Name)
		m.mu.Unlock()
	}
	if r.pb != nil && len(errs) == 0 {
		if err := m.driver.RemoveStack(ctx, r.pb.Stack); err != nil {
			errs = append(errs, fmt.Errorf("remove networks and volumes: %w", err))
		}
	}
	if err := m.gens.Deactivate(name); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("down %s: %w; run `berth down %s` again to retry", name, errors.Join(errs...), name)
	}
	m.mu.Lock()
	delete(m.stacks, name)
	r.removed = true
	m.mu.Unlock()
	emit("", "stack "+name+" is down")
	return nil
}

// Containers lists every container, by stack then playbook order.
func (m *Manager) Containers(ctx context.Context) []api.ContainerStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []api.ContainerStatus
	names := make([]string, 0, len(m.stacks))
	for n := range m.stacks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := m.stacks[n]
		if r.pb == nil {
			continue
		}
		for _, pc := range r.pb.Stack.Containers {
			if c := r.containers[pc.Name]; c != nil {
				out = append(out, c.status())
			}
		}
	}
	return out
}

// Pause freezes a running container (cgroup freezer).
func (m *Manager) Pause(ctx context.Context, name string) error {
	c, err := m.find(name)
	if err != nil {
		return err
	}
	return c.pause(ctx)
}

// Resume thaws a paused container.
func (m *Manager) Resume(ctx context.Context, name string) error {
	c, err := m.find(name)
	if err != nil {
		return err
	}
	return c.resume(ctx)
}

// Logs reads a container's log; see api.Backend.Logs.
func (m *Manager) Logs(ctx context.Context, name string, opts api.LogOptions, emit func(api.LogLine) error) error {
	c, err := m.find(name)
	if err != nil {
		return err
	}
	return m.driver.Logs(ctx, c.spec, opts.Tail, opts.Follow, func(l LogLine) error {
		return emit(api.LogLine{Time: l.Time, Stream: l.Stream, Text: l.Text})
	})
}

// Exec runs a process in a running container.
func (m *Manager) Exec(ctx context.Context, name string, req api.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	c, err := m.find(name)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	task, state := c.task, c.state
	c.mu.Unlock()
	if task == nil || state != StateRunning {
		return 0, fmt.Errorf("container %s is %s, not running: %w", name, state, ErrState)
	}
	return task.Exec(ctx, req.Args, req.Env, stdin, stdout, stderr)
}

// InUse reports whether an image digest is used by a container berthd runs.
func (m *Manager) InUse(digest string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.stacks {
		for _, c := range r.containers {
			for _, im := range c.spec.Images {
				if im.Digest == digest {
					return true
				}
			}
		}
	}
	return false
}

// find looks a container up by "name" (unique across stacks) or "stack/name".
func (m *Manager) find(name string) (*container, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ctr, ok := strings.Cut(name, "/"); ok {
		if r := m.stacks[st]; r != nil && r.containers[ctr] != nil {
			return r.containers[ctr], nil
		}
		return nil, fmt.Errorf("no container %q (see `berth ps`): %w", name, ErrNotFound)
	}
	var found []*container
	for _, r := range m.stacks {
		if c := r.containers[name]; c != nil {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no container %q (see `berth ps`): %w", name, ErrNotFound)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%d stacks have a container %q: name it as STACK/%s: %w", len(found), name, name, ErrNotFound)
}

// load parses the playbook and resolves its images.
func (m *Manager) load(ctx context.Context, req api.ApplyRequest) (*playbook.Playbook, []*Spec, error) {
	pb, diags := playbook.Parse(req.Source, req.File, req.Vars)
	if diags.HasErrors() {
		return nil, nil, &api.DiagnosticsError{Diags: diags}
	}
	if m.check != nil {
		if diags := m.check(pb); diags.HasErrors() {
			return nil, nil, &api.DiagnosticsError{Diags: diags}
		}
	}
	specs, diags := m.resolve(ctx, pb, nil)
	if diags.HasErrors() {
		return nil, nil, &api.DiagnosticsError{Diags: diags}
	}
	return pb, specs, nil
}

// resolve finds every container's images in the store, by the digests a
// generation pinned when pinned is not nil. Missing images are diagnostics.
func (m *Manager) resolve(ctx context.Context, pb *playbook.Playbook, pinned map[string]string) ([]*Spec, hcl.Diagnostics) {
	found := map[string]image.Image{}
	var lookupErr error
	has := func(ref string) bool {
		if _, ok := found[ref]; ok {
			return true
		}
		key := ref
		if d, ok := pinned[ref]; ok {
			key = d
		}
		im, err := m.images.Resolve(ctx, key)
		if err != nil {
			if !errors.Is(err, image.ErrNotFound) && lookupErr == nil {
				lookupErr = err
			}
			return false
		}
		found[ref] = im
		return true
	}
	diags := playbook.CheckImages(pb, has)
	if lookupErr != nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Image store error", Detail: lookupErr.Error()})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	var specs []*Spec
	for _, c := range pb.Stack.Containers {
		s := &Spec{Stack: pb.Stack, Container: c}
		for _, ref := range c.Images {
			s.Images = append(s.Images, found[ref.Ref])
		}
		s.Parts = digestParts(pb.Stack, c, s.Images)
		s.Digest = digestOf(s.Parts)
		specs = append(specs, s)
	}
	return specs, nil
}

// diff compares the running stack with the new specs: the plan, the
// containers to stop and remove, and the specs to create.
func (m *Manager) diff(r *running, pb *playbook.Playbook, specs []*Spec) (*api.Plan, []*container, []*Spec) {
	plan := &api.Plan{Stack: pb.Stack.Name}
	var gone []*container
	var fresh []*Spec
	wanted := map[string]bool{}
	for _, s := range specs {
		name := s.Container.Name
		wanted[name] = true
		var old *container
		if r != nil {
			old = r.containers[name]
		}
		switch {
		case old == nil:
			plan.Actions = append(plan.Actions, api.Action{Container: name, Kind: api.ActionCreate})
			fresh = append(fresh, s)
		case old.spec.Digest != s.Digest:
			plan.Actions = append(plan.Actions, api.Action{Container: name, Kind: api.ActionReplace, Reason: changedParts(old.spec.Parts, s.Parts)})
			gone = append(gone, old)
			fresh = append(fresh, s)
		case old.ended():
			plan.Actions = append(plan.Actions, api.Action{Container: name, Kind: api.ActionReplace, Reason: "container is " + string(old.currentState())})
			gone = append(gone, old)
			fresh = append(fresh, s)
		default:
			plan.Actions = append(plan.Actions, api.Action{Container: name, Kind: api.ActionUnchanged})
		}
	}
	if r != nil && r.pb != nil {
		for _, c := range r.pb.Stack.Containers {
			if !wanted[c.Name] {
				plan.Actions = append(plan.Actions, api.Action{Container: c.Name, Kind: api.ActionRemove})
				gone = append(gone, r.containers[c.Name])
			}
		}
	}
	return plan, gone, fresh
}

// startAll starts the given containers of r, in parallel: each is
// prepared, then started as soon as its dependencies meet their conditions.
// The returned channels, one per container, receive nil once it has
// started or the reason it did not.
func (m *Manager) startAll(r *running, specs []*Spec) map[string]chan error {
	waits := map[string]chan error{}
	for _, s := range specs {
		waits[s.Container.Name] = make(chan error, 1)
	}
	for _, s := range specs {
		c := r.containers[s.Container.Name]
		deps := map[*container]playbook.Condition{}
		for _, d := range s.Container.DependsOn {
			deps[r.containers[d.Container]] = d.Condition
		}
		done := waits[s.Container.Name]
		go func() {
			ctx, cancel := context.WithCancel(m.life)
			defer cancel()
			go func() {
				select {
				case <-c.stopSig: // stopped while waiting for its dependencies
					cancel()
				case <-ctx.Done():
				}
			}()
			fail := func(err error) { done <- c.failStart(err) }
			if err := m.driver.Prepare(ctx, s); err != nil {
				fail(fmt.Errorf("prepare: %w", err))
				return
			}
			c.prepared = true
			for dep, cond := range deps {
				if err := dep.await(ctx, cond); err != nil {
					fail(fmt.Errorf("dependency %w", err))
					return
				}
			}
			go c.supervise(m.life, nil)
			done <- c.await(m.life, playbook.ConditionStarted)
		}()
	}
	return waits
}

// stopAll stops the given containers of one stack, each after those of them
// that depend on it, in parallel where the order allows. It returns the
// containers that did not stop (ctx ended), joined; a container whose
// dependent did not stop is not stopped either. Call with r.apply held.
func (m *Manager) stopAll(ctx context.Context, cs []*container, emit func(string, string)) error {
	type result struct {
		done chan struct{}
		err  error
	}
	stopped := map[*container]*result{}
	for _, c := range cs {
		stopped[c] = &result{done: make(chan struct{})}
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		// Dependents of c among the ones being stopped go first.
		var dependents []*container
		for _, other := range cs {
			for _, d := range other.spec.Container.DependsOn {
				if d.Container == c.spec.Container.Name {
					dependents = append(dependents, other)
				}
			}
		}
		res := stopped[c]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(res.done)
			for _, d := range dependents {
				<-stopped[d].done
				if stopped[d].err != nil {
					res.err = fmt.Errorf("container %s: not stopped: its dependent %s is still running", c.spec.Container.Name, d.spec.Container.Name)
					return
				}
			}
			st := c.spec.Container.Stop
			emit(c.spec.Container.Name, fmt.Sprintf("stopping (%s, then SIGKILL after %s)", unix.SignalName(st.Signal), st.Timeout))
			if res.err = c.stop(ctx); res.err != nil {
				emit(c.spec.Container.Name, "failed to stop: "+res.err.Error())
				return
			}
			emit(c.spec.Container.Name, "stopped")
		}()
	}
	wg.Wait()
	var errs []error
	for _, c := range cs {
		if err := stopped[c].err; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Shutdown ends supervision of every stack without stopping a container,
// for berthd's exit; the next berthd re-adopts them. It returns once every
// supervisor, and every goroutine still preparing a container or waiting
// for its dependencies, has returned. The Manager must not be used after.
func (m *Manager) Shutdown() {
	m.end()
	m.mu.Lock()
	var all []*container
	for _, r := range m.stacks {
		for _, c := range r.containers {
			all = append(all, c)
		}
	}
	m.mu.Unlock()
	for _, c := range all {
		<-c.done
	}
}

func emitter(progress func(api.Event)) func(container, msg string) {
	return func(container, msg string) {
		if progress != nil {
			progress(api.Event{Time: time.Now(), Container: container, Message: msg})
		}
	}
}

// changes reports whether a plan changes any container.
func changes(p *api.Plan) bool {
	for _, a := range p.Actions {
		if a.Kind != api.ActionUnchanged {
			return true
		}
	}
	return false
}

// ended reports whether the container will not run again by itself.
func (c *container) ended() bool {
	s := c.currentState()
	return s == StateFailed || s == StateStopped || s == StateExited
}

func (c *container) status() api.ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := api.ContainerStatus{
		Stack:     c.spec.Stack.Name,
		Name:      c.spec.Container.Name,
		State:     string(c.state),
		Health:    string(c.health),
		StartedAt: c.startedAt,
		Restarts:  c.restarts,
	}
	for _, ref := range c.spec.Container.Images {
		st.Images = append(st.Images, ref.Ref)
	}
	if c.task != nil {
		st.PID = c.task.Pid()
	}
	if c.lastErr != nil {
		st.Message = c.lastErr.Error()
	}
	if c.exit != nil {
		st.ExitCode = c.exit.Code
		st.FinishedAt = c.exit.At
	}
	return st
}
