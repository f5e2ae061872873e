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

// killGrace is how long stop waits for a container to go after SIGKILL,
// even when its caller's ctx has ended.
const killGrace = 5 * time.Second

// errStopped is run's answer when the container was asked to stop before
// its process started.
var errStopped = errors.New("stopped before start")

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

	// prepared is false for an adopted container: this berthd has not
	// prepared it, and its mounts and network namespace may be gone (a
	// reboot), so a restart prepares it first. Only the goroutine that
	// starts the container, then its supervisor, touch it.
	prepared bool
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

// failStart records that the container did not start, for err, and ends
// it as its supervisor would; it returns the error to report (errStopped
// when a stop caused it).
func (c *container) failStart(err error) error {
	c.update(func() {
		if c.stopping { // the error is likely the stop's cancel
			c.state, err = StateStopped, errStopped
		} else {
			c.state, c.lastErr = StateFailed, err
		}
	})
	close(c.done)
	return err
}

// supervise runs the container until it is stopped, its policy keeps it
// down, or ctx ends (berthd shutting down: the container keeps running).
// adopted, when not nil, is the process an earlier berthd started: it is
// supervised first instead of starting one, and the restart policy applies
// to it as to any other run (it may have exited already).
func (c *container) supervise(ctx context.Context, adopted Task) {
	defer close(c.done)
	policy := c.spec.Container.Restart
	consecutive := 0
	for {
		task, stopHealth, err := c.run(ctx, adopted)
		adopted = nil
		if ctx.Err() != nil {
			if stopHealth != nil {
				stopHealth()
			}
			return
		}
		if errors.Is(err, errStopped) {
			c.update(func() { c.state = StateStopped })
			return
		}
		if err != nil {
			c.log.Error("start failed", "err", err)
			stopped := false
			c.update(func() {
				c.lastErr = err
				switch stopped = c.stopping; {
				case stopped:
					c.state = StateStopped
				case policy.Policy == playbook.RestartNever:
					c.state = StateFailed
				default:
					c.state = StateRestarting
				}
			})
			if stopped || policy.Policy == playbook.RestartNever {
				return
			}
		} else {
			exit, werr := task.Wait(ctx)
			stopHealth()
			if ctx.Err() != nil {
				return
			}
			if werr != nil {
				exit = Exit{Code: -1}
				c.log.Error("lost the container's process; counting it as a failed exit", "err", werr)
			}
			if exit.At.IsZero() {
				// A lost process, or a status recorded without a time.
				exit.At = time.Now()
			}
			if derr := task.Delete(context.WithoutCancel(ctx)); derr != nil {
				c.log.Warn("delete runtime state", "err", derr)
			}
			restart := policy.Policy == playbook.RestartAlways ||
				(policy.Policy == playbook.RestartOnFailure && exit.Failed())
			var ranFor time.Duration
			stopped := false
			// One critical section, so a watcher never sees the exit
			// without the state that follows from it, and stop either
			// finds the task or sees the state it leaves.
			c.update(func() {
				ranFor = exit.At.Sub(c.startedAt)
				c.exit = &exit
				c.task = nil
				if c.health != HealthNone {
					c.health = HealthStarting
				}
				switch stopped = c.stopping; {
				case stopped:
					c.state = StateStopped
				case !restart:
					c.state = StateExited
				default:
					c.state = StateRestarting
				}
			})
			c.log.Info("exited", "exit", exit.String(), "ran_for", ranFor.Round(time.Millisecond))
			if stopped || !restart {
				return
			}
			if ranFor >= resetAfter {
				consecutive = 0
			}
		}
		if policy.Attempts > 0 && consecutive >= policy.Attempts {
			c.log.Error("restart attempts used up", "attempts", policy.Attempts)
			c.update(func() {
				if c.stopping {
					c.state = StateStopped
					return
				}
				c.state = StateFailed
				if c.lastErr == nil {
					c.lastErr = fmt.Errorf("gave up after %d restarts (restart.attempts): see `berth logs %s/%s`",
						policy.Attempts, c.spec.Stack.Name, c.spec.Container.Name)
				}
			})
			return
		}
		consecutive++
		delay := Backoff(policy, consecutive)
		c.log.Info("restarting", "in", delay, "attempt", consecutive)
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-c.stopSig:
			timer.Stop()
			c.update(func() { c.state = StateStopped })
			return
		case <-ctx.Done():
			timer.Stop()
			return
		}
		c.update(func() { c.restarts++ })
	}
}

// run starts the container's process, or takes adopted, and starts its
// health check; stopHealth ends the health check. A container that was not
// prepared by this berthd (adopted) is prepared before it starts again.
// When stop came while the process was starting, run has it stopped.
func (c *container) run(ctx context.Context, adopted Task) (task Task, stopHealth func(), err error) {
	if c.isStopping() {
		return nil, nil, errStopped
	}
	task = adopted
	if task == nil {
		if !c.prepared {
			if err := c.driver.Prepare(ctx, c.spec); err != nil {
				return nil, nil, fmt.Errorf("prepare: %w", err)
			}
			c.prepared = true
		}
		if task, err = c.driver.Start(ctx, c.spec); err != nil {
			return nil, nil, err
		}
	}
	stopping := false
	c.update(func() {
		c.task = task
		c.state = StateRunning
		c.startedAt = task.StartedAt()
		c.starts++
		c.lastErr = nil
		if c.spec.Container.Health != nil {
			c.health = HealthStarting
		}
		if stopping = c.stopping; stopping {
			// stop ran while the process started and found no task to
			// signal: it is waiting for this supervisor to end.
			c.state = StateStopping
		}
	})
	if stopping {
		go c.terminate(ctx, task, false)
	}
	hctx, cancel := context.WithCancel(ctx)
	if h := c.spec.Container.Health; h != nil && !stopping {
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
				c.update(func() {
					if ctx.Err() == nil { // the process has not exited meanwhile
						if c.health == HealthUnhealthy {
							c.lastErr = nil // the failure it reported is over
						}
						c.health, c.healthy = HealthHealthy, true
					}
				})
			case time.Now().Before(startEnd) && !c.wasHealthy():
			default:
				failures++
				if failures >= h.Retries {
					msg := fmt.Errorf("health check failed %d times: %v%s", failures, err, out)
					c.update(func() {
						if ctx.Err() == nil {
							c.health, c.lastErr = HealthUnhealthy, msg
						}
					})
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
// stop timeout, or at once when ctx ends. It returns once the supervisor
// (or the goroutine still preparing the container or waiting for its
// dependencies) has finished, or with an error when ctx ended and the
// container did not go even after SIGKILL. Safe to call again, and
// concurrently.
func (c *container) stop(ctx context.Context) error {
	var task Task
	first, paused := false, false
	c.update(func() {
		first = !c.stopping
		c.stopping = true
		task, paused = c.task, c.state == StatePaused
		if task != nil {
			// Set with stopping, so the supervisor's Stopped, which it
			// sets on the exit, always comes after.
			c.state = StateStopping
		}
	})
	if first {
		close(c.stopSig)
	}
	if task != nil {
		c.terminate(ctx, task, paused)
	}
	select {
	case <-c.done:
		return nil
	default:
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop container %s: %w: it may still run; run the command again to retry", c.spec.Container.Name, ctx.Err())
	}
}

// terminate sends task the stop signal, then SIGKILL when the container
// has not gone after the stop timeout or when ctx ends; it returns when the
// supervisor has finished or killGrace after SIGKILL.
func (c *container) terminate(ctx context.Context, task Task, paused bool) {
	if paused {
		// A frozen process cannot take a signal; thaw it first.
		if err := task.Resume(ctx); err != nil {
			c.log.Warn("resume before stop", "err", err)
		}
	}
	st := c.spec.Container.Stop
	if err := task.Kill(ctx, st.Signal); err != nil {
		c.log.Warn("stop signal", "signal", st.Signal, "err", err)
	}
	timer := time.NewTimer(st.Timeout)
	defer timer.Stop()
	select {
	case <-c.done:
		return
	case <-timer.C:
		c.log.Warn("did not stop in time; killing", "timeout", st.Timeout)
	case <-ctx.Done():
	}
	if err := task.Kill(context.WithoutCancel(ctx), syscall.SIGKILL); err != nil {
		c.log.Warn("kill", "err", err)
	}
	timer.Reset(killGrace)
	select {
	case <-c.done:
	case <-timer.C:
		c.log.Error("still running after SIGKILL", "grace", killGrace)
	}
}

// pause freezes the running container. A stop or an exit that comes
// while it pauses wins: the task is thawed again and pause fails.
func (c *container) pause(ctx context.Context) error {
	c.mu.Lock()
	task, state := c.task, c.state
	c.mu.Unlock()
	if state != StateRunning || task == nil {
		return c.notIn(state, "running", "berth resume")
	}
	if err := task.Pause(ctx); err != nil {
		return fmt.Errorf("pause container %s: %w", c.spec.Container.Name, err)
	}
	ok := false
	c.update(func() {
		if ok = c.task == task && c.state == StateRunning; ok {
			c.state = StatePaused
		}
	})
	if !ok {
		if err := task.Resume(context.WithoutCancel(ctx)); err != nil {
			c.log.Warn("thaw after a pause that lost to a stop", "err", err)
		}
		return c.notIn(c.currentState(), "running", "")
	}
	return nil
}

// resume thaws the paused container.
func (c *container) resume(ctx context.Context) error {
	c.mu.Lock()
	task, state := c.task, c.state
	c.mu.Unlock()
	if state != StatePaused || task == nil {
		return c.notIn(state, "paused", "")
	}
	if err := task.Resume(ctx); err != nil {
		return fmt.Errorf("resume container %s: %w", c.spec.Container.Name, err)
	}
	c.update(func() {
		if c.task == task && c.state == StatePaused {
			c.state = StateRunning
		}
	})
	return nil
}

// notIn is the ErrState error for an operation that needs the container
// to be in state want; hint names a command that may help.
func (c *container) notIn(state State, want, hint string) error {
	msg := fmt.Sprintf("container %s is %s, not %s", c.spec.Container.Name, state, want)
	if hint != "" && state == StatePaused {
		msg += ": run `" + hint + " " + c.spec.Container.Name + "` first"
	}
	return fmt.Errorf("%s: %w", msg, ErrState)
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
		msg := fmt.Sprintf("%s is %s", c.spec.Container.Name, c.describeLocked())
		switch {
		case c.lastErr != nil:
			msg += ": " + c.lastErr.Error()
		case c.exit != nil && c.state != StateStopped:
			msg += ": " + c.exit.String()
		}
		return false, fmt.Errorf("%s (see `berth logs %s/%s`)", msg, c.spec.Stack.Name, c.spec.Container.Name)
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
// min(Delay * 2^(n-1), MaxDelay); Delay when MaxDelay is 0.
func Backoff(r playbook.Restart, n int) time.Duration {
	d := r.Delay
	for i := 1; i < n && d > 0 && d < r.MaxDelay; i++ {
		if d > r.MaxDelay/2 {
			d = r.MaxDelay // doubling would pass it, or overflow
			break
		}
		d *= 2
	}
	if r.MaxDelay > 0 && d > r.MaxDelay {
		d = r.MaxDelay
	}
	return d
}
