package daemon

import (
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/berth-io/berth/core/exepages"
)

// trimQuiet is how long berthd must be quiet after a burst of work before
// it trims.
const trimQuiet = 500 * time.Millisecond

// trimmer hands memory back once berthd is quiet after a burst of work
// (its start, a playbook applied or taken down, an image imported or
// removed): the heap the burst left (debug.FreeOSMemory) and the
// executable pages it ran (exepages.Release), which berthd may not run
// again for hours. An ECU's memory budget is read from berthd's resident
// set, which should show what it keeps using; a page it needs again comes
// back from the page cache.
type trimmer struct {
	quiet time.Duration
	trim  func() // what a trim does; release by default

	mu    sync.Mutex
	timer *time.Timer
}

func newTrimmer(log *slog.Logger) *trimmer {
	return &trimmer{quiet: trimQuiet, trim: func() { release(log) }}
}

// soon schedules a trim once quiet has passed, replacing a trim scheduled
// before: a burst of calls trims once, after the last.
func (t *trimmer) soon() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
	}
	t.timer = time.AfterFunc(t.quiet, t.trim)
}

// stop cancels a scheduled trim.
func (t *trimmer) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
	}
}

// release frees the heap berthd no longer uses and drops its executable
// pages from its resident set.
func release(log *slog.Logger) {
	debug.FreeOSMemory()
	if err := exepages.Release(); err != nil {
		log.Debug("keeping executable pages", "err", err)
	}
}
