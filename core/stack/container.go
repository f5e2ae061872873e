package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-io/berth/core/playbook"
)

// State is where a container is in its life.
type State string

const (
	StateCreated    State = "created"    // prepared, not started yet
	StateRunning    State = "running"    // its process runs
	StatePaused     State = "paused"     // frozen by the cgroup freezer
	StateRestarting State = "restarting" // exited; waiting out the back-off
	StateExited     State = "exited"     // exited; the restart policy keeps it down
	StateStopping   State = "stopping"   // asked to stop; waiting for the process
	StateStopped    State = "stopped"    // stopped by berth
	StateFailed     State = "failed"     // gave up: start error or restart attempts used up
)

// Health is what a container's health check last said.
type Health string

const (
	HealthNone      Health = ""
	HealthStarting  Health = "starting"
	HealthHealthy   Health = "healthy"
	HealthUnhealthy Health = "unhealthy"
)

// resetAfter is how long a container must run for its restart back-off to
// start again from the first delay.
const resetAfter = 10 * time.Second

// container supervises one container: it starts it, restarts it by its
// policy, runs its health check, and stops it. Its fields are guarded by mu;
// watchers wait on changed, which is closed and replaced on every change.
type container struct {
	spec   *Spec
	driver Driver
	log    *slog.Logger

	mu        sync.Mutex
	changed   chan struct{}
	state     State
	health    Health
	task      Task
	startedAt time.Time
	exit      *Exit
	restarts  int
	starts    int   // successful starts since berthd began supervising
	healthy   bool  // was healthy at least once
	lastErr   error // the last start error or health failure, for dependents
	stopping  bool
	stopSig   chan struct{} // closed by stop
	done      chan struct{} // closed when the supervisor returns
}

func newContainer(spec *Spec, d Driver, log *slog.Logger) *container {
	return &container{
		spec:    spec,
		driver:  d,
		log:     log.With("container", spec.Container.Name, "stack", spec.Stack.Name),
		changed: make(chan struct{}),
		state:   StateCreated,
		stopSig: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// update runs f under the lock and wakes every watcher.
func (c *container) update(f func()) {
	c.mu.Lock()
	f()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// waitFor blocks until cond holds (checked under the lock) or ctx ends.
func (c *container) waitFor(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		ok, ch := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// supervise runs the container until it is stopped, its policy keeps it
// down, or ctx ends (berthd shutting down: the container keeps running).
// adopted, when not nil, is the process an earlier berthd started: it is
// supervised first instead of starting one.
func (c *container) supervise(ctx context.Context, adopted Task) {
	defer close(c.done)
	policy := c.spec.Container.Restart
	consecutive := 0
	for {
		task, stopHealth, err := c.run(ctx, adopted)
		adopted = nil
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.log.Error("start failed", "err", err)
			c.update(func() { c.lastErr = err })
			if c.isStopping() {
				c.update(func() { c.state = StateStopped })
				return
			}
			if policy.Policy == playbook.RestartNever {
				c.update(func() { c.state = StateFailed })
				return
			}
		} else {
			exit, werr := task.Wait(ctx)
			stopHealth()
			if ctx.Err() != nil {
				return
			}
			if werr != nil {
				exit = Exit{Code: -1, At: time.Now()}
				c.log.Error("lost the container's process", "err", werr)
			}
			if derr := task.Delete(context.WithoutCancel(ctx)); derr != nil {
				c.log.Warn("delete runtime state", "err", derr)
			}
			ranFor := exit.At.Sub(c.startedAtLocked())
			c.update(func() {
				c.exit = &exit
				c.task = nil
				if c.health != HealthNone {
					c.health = HealthStarting
				}
			})
			c.log.Info("exited", "exit", exit.String(), "ran_for", ranFor.Round(time.Millisecond))
			if c.isStopping() {
				c.update(func() { c.state = StateStopped })
				return
			}
			if ranFor >= resetAfter {
				consecutive = 0
			}
			restart := policy.Policy == playbook.RestartAlways ||
				(policy.Policy == playbook.RestartOnFailure && exit.Failed())
			if !restart {
				c.update(func() { c.state = StateExited })
				return
			}
		}
		if policy.Attempts > 0 && consecutive >= policy.Attempts {
			c.log.Error("restart attempts used up", "attempts", policy.Attempts)
			c.update(func() {
				c.state = StateFailed
				if c.lastErr == nil {
					c.lastErr = fmt.Errorf("gave up after %d restarts", policy.Attempts)
				}
			})
			return
		}
		consecutive++
		delay := Backoff(policy, consecutive)
		c.update(func() { c.state = StateRestarting })
		c.log.Info("restarting", "in", delay, "attempt", consecutive)
		select {
		case <-time.After(delay):
		case <-c.stopSig:
			c.update(func() { c.state = StateStopped })
			return
		case <-ctx.Done():
			return
		}
		c.update(func() { c.restarts++ })
	}
}

// run starts the container's process, or takes adopted, and starts its
// health check; stopHealth ends the health check.
func (c *container) run(ctx context.Context, adopted Task) (task Task, stopHealth func(), err error) {
	if c.isStopping() {
		return nil, nil, errors.New("stopped before start")
	}
	task = adopted
	if task == nil {
		if task, err = c.driver.Start(ctx, c.spec); err != nil {
			return nil, nil, err
		}
	}
	c.update(func() {
		c.task = task
		c.state = StateRunning
		c.startedAt = task.StartedAt()
		c.starts++
		c.lastErr = nil
		if c.spec.Container.Health != nil {
			c.health = HealthStarting
		}
	})
	hctx, cancel := context.WithCancel(ctx)
	if h := c.spec.Container.Health; h != nil {
		go c.checkHealth(hctx, task, h)
	}
	return task, cancel, nil
}

// checkHealth runs the health command right after start and then every
// interval until ctx ends. Failures during the start period do not count
// until the first success.
func (c *container) checkHealth(ctx context.Context, task Task, h *playbook.Health) {
	startEnd := time.Now().Add(h.StartPeriod)
	failures := 0
	for {
		if c.currentState() == StateRunning { // paused containers are not checked
			out, err := c.probe(ctx, task, h)
			if ctx.Err() != nil {
				return
			}
			switch {
			case err == nil:
				failures = 0
				c.update(func() { c.health, c.healthy = HealthHealthy, true })
			case time.Now().Before(startEnd) && !c.wasHealthy():
			default:
				failures++
				if failures >= h.Retries {
					msg := fmt.Errorf("health check failed %d times: %v%s", failures, err, out)
					c.update(func() { c.health, c.lastErr = HealthUnhealthy, msg })
				}
			}
		}
		select {
		case <-time.After(h.Interval):
		case <-ctx.Done():
			return
		}
	}
}

// probe runs the health command once; out is its trimmed output for messages.
func (c *container) probe(ctx context.Context, task Task, h *playbook.Health) (string, error) {
	pctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	var out bytes.Buffer
	code, err := task.Exec(pctx, h.Exec, nil, nil, &out, &out)
	if err == nil && code != 0 {
		err = fmt.Errorf("%s exited %d", strings.Join(h.Exec, " "), code)
	}
	if pctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		err = fmt.Errorf("%s timed out after %s", strings.Join(h.Exec, " "), h.Timeout)
	}
	text := strings.TrimSpace(out.String())
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	if text != "" {
		text = ": " + text
	}
	return text, err
}

// stop asks the container to stop: the stop signal, then SIGKILL after the
// stop timeout. It returns once the supervisor has finished.
func (c *container) stop(ctx context.Context) {
	c.mu.Lock()
	first := !c.stopping
	c.stopping = true
	task, state := c.task, c.state
	c.mu.Unlock()
	if first {
		close(c.stopSig)
	}
	if task != nil && (state == StateRunning || state == StatePaused) {
		c.update(func() { c.state = StateStopping })
		if state == StatePaused {
			// A frozen process cannot take a signal; thaw it first.
			if err := task.Resume(ctx); err != nil {
				c.log.Warn("resume before stop", "err", err)
			}
		}
		st := c.spec.Container.Stop
		if err := task.Kill(ctx, st.Signal); err != nil {
			c.log.Warn("stop signal", "signal", st.Signal, "err", err)
		}
		select {
		case <-c.done:
			return
		case <-time.After(st.Timeout):
			c.log.Warn("did not stop in time; killing", "timeout", st.Timeout)
		case <-ctx.Done():
		}
		if err := task.Kill(context.WithoutCancel(ctx), syscall.SIGKILL); err != nil {
			c.log.Warn("kill", "err", err)
		}
	}
	<-c.done
}

func (c *container) pause(ctx context.Context) error {
	c.mu.Lock()
	task, state := c.task, c.state
	c.mu.Unlock()
	if state != StateRunning || task == nil {
		return fmt.Errorf("container %s is %s, not running: %w", c.spec.Container.Name, state, ErrState)
	}
	if err := task.Pause(ctx); err != nil {
		return err
	}
	c.update(func() { c.state = StatePaused })
	return nil
}

func (c *container) resume(ctx context.Context) error {
	c.mu.Lock()
	task, state := c.task, c.state
	c.mu.Unlock()
	if state != StatePaused || task == nil {
		return fmt.Errorf("container %s is %s, not paused: %w", c.spec.Container.Name, state, ErrState)
	}
	if err := task.Resume(ctx); err != nil {
		return err
	}
	c.update(func() { c.state = StateRunning })
	return nil
}

func (c *container) isStopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

func (c *container) currentState() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *container) wasHealthy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.healthy
}

func (c *container) startedAtLocked() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startedAt
}

// reached reports, under c.mu, whether the container has met cond, and an
// error when it never will.
func (c *container) reached(cond playbook.Condition) (bool, error) {
	switch {
	case cond == playbook.ConditionHealthy && c.healthy:
		return true, nil
	case cond == playbook.ConditionStarted && c.starts > 0:
		return true, nil
	case c.state == StateFailed || c.state == StateStopped || c.state == StateExited ||
		(c.health == HealthUnhealthy && cond == playbook.ConditionHealthy):
		why := c.lastErr
		if why == nil && c.exit != nil {
			why = errors.New(c.exit.String())
		}
		return false, fmt.Errorf("%s is %s: %v", c.spec.Container.Name, c.describeLocked(), why)
	case c.starts == 0 && c.lastErr != nil:
		return false, fmt.Errorf("%s did not start: %w", c.spec.Container.Name, c.lastErr)
	}
	return false, nil
}

func (c *container) describeLocked() string {
	if c.health == HealthUnhealthy {
		return string(HealthUnhealthy)
	}
	return string(c.state)
}

// await waits until the container meets cond, or fails to.
func (c *container) await(ctx context.Context, cond playbook.Condition) error {
	var failed error
	err := c.waitFor(ctx, func() bool {
		ok, err := c.reached(cond)
		failed = err
		return ok || err != nil
	})
	if err != nil {
		return err
	}
	return failed
}

// Backoff is the wait before the n-th consecutive restart (n >= 1):
// min(Delay * 2^(n-1), MaxDelay).
func Backoff(r playbook.Restart, n int) time.Duration {
	d := r.Delay
	for i := 1; i < n && d < r.MaxDelay; i++ {
		d *= 2
	}
	if r.MaxDelay > 0 && d > r.MaxDelay {
		d = r.MaxDelay
	}
	return d
}
