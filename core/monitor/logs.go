package monitor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// LogLine is one line a container wrote.
type LogLine struct {
	Time   time.Time
	Stream string // "stdout" or "stderr"
	Text   string // without the newline
}

// followInterval is how often a following ReadLogs looks for new lines.
const followInterval = 100 * time.Millisecond

// ReadLogs reads the container's log in the monitor directory dir, oldest
// line first across rotated files, and calls emit for each line. tail < 0
// reads every line, tail == 0 none of the existing ones, tail > 0 the last
// tail lines. With follow, it then waits for new lines (following
// current.log across rotations) and returns nil when ctx ends or when the
// container has exited and every line is read. An error from emit stops
// ReadLogs and is returned. Lines that do not parse are skipped.
func ReadLogs(ctx context.Context, dir string, tail int, follow bool, emit func(LogLine) error) error {
	ld := filepath.Join(dir, logDir)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("read logs: %w", err)
	}
	files, err := openLogFiles(ld)
	if err != nil {
		return fmt.Errorf("read logs: %w", err)
	}
	r := &logReader{dir: dir, ld: ld, emit: emit}
	defer r.closeCur()

	// The existing lines; the newest file stays open to follow it.
	var ring []LogLine
	keep := func(l LogLine) error {
		switch {
		case tail < 0:
			return emit(l)
		case tail == 0:
		case len(ring) < tail:
			ring = append(ring, l)
		default:
			copy(ring, ring[1:])
			ring[len(ring)-1] = l
		}
		return nil
	}
	r.sink = keep
	if err := r.readFiles(files); err != nil {
		return err
	}
	for _, l := range ring {
		if err := emit(l); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	r.sink = emit
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		// Seen before the last read: every line is in the files by then.
		_, exited, _ := readExit(dir)
		if err := r.advance(); err != nil {
			return err
		}
		if exited {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type logFile struct {
	f  *os.File
	fi os.FileInfo
}

// openLogFiles opens the log files, oldest first.
func openLogFiles(ld string) ([]logFile, error) {
	ents, err := os.ReadDir(ld)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var idx []int
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), currentLog+".")
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(n); err == nil && i > 0 {
			idx = append(idx, i)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(idx)))
	names := make([]string, 0, len(idx)+1)
	for _, i := range idx {
		names = append(names, rotatedName(ld, i))
	}
	names = append(names, filepath.Join(ld, currentLog))
	var out []logFile
	for _, n := range names {
		f, err := os.Open(n)
		if errors.Is(err, os.ErrNotExist) {
			continue // rotated away meanwhile
		}
		if err != nil {
			closeAll(out)
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			closeAll(out)
			return nil, err
		}
		out = append(out, logFile{f, fi})
	}
	return out, nil
}

func closeAll(fs []logFile) {
	for _, f := range fs {
		f.f.Close()
	}
}

// logReader reads log files in order and keeps the newest one open.
type logReader struct {
	dir, ld string
	emit    func(LogLine) error
	sink    func(LogLine) error
	cur     *logFile
	br      *bufio.Reader
	partial []byte // a line read without its newline yet
}

func (r *logReader) closeCur() {
	if r.cur != nil {
		r.cur.f.Close()
		r.cur = nil
	}
}

// readFiles reads every file in fs to its end; the last one becomes cur.
func (r *logReader) readFiles(fs []logFile) error {
	for i := range fs {
		r.closeCur()
		r.cur, r.br, r.partial = &fs[i], bufio.NewReader(fs[i].f), nil
		if err := r.drain(); err != nil {
			closeAll(fs[i+1:])
			return err
		}
	}
	return nil
}

// drain reads cur to its current end.
func (r *logReader) drain() error {
	if r.cur == nil {
		return nil
	}
	for {
		b, err := r.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			r.partial = append(r.partial, b...)
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read logs: %w", err)
		}
		if len(b) > 0 && b[len(b)-1] == '\n' {
			line := b[:len(b)-1]
			if len(r.partial) > 0 {
				line = append(r.partial, line...)
				r.partial = r.partial[:0]
			}
			if l, ok := parseLine(line); ok {
				if err := r.sink(l); err != nil {
					return err
				}
			}
			continue
		}
		r.partial = append(r.partial, b...)
		return nil // EOF: wait for the rest
	}
}

// advance reads what was added to cur and, if current.log was rotated,
// the files written after cur, in order.
func (r *logReader) advance() error {
	if err := r.drain(); err != nil {
		return err
	}
	fi, err := os.Stat(filepath.Join(r.ld, currentLog))
	if err != nil {
		return nil // not created yet, or in the middle of a rotation
	}
	if r.cur != nil && os.SameFile(r.cur.fi, fi) {
		return nil
	}
	files, err := openLogFiles(r.ld)
	if err != nil {
		return fmt.Errorf("read logs: %w", err)
	}
	// Skip cur and everything older; when cur was rotated out entirely,
	// every file is newer.
	start := 0
	if r.cur != nil {
		for i, f := range files {
			if os.SameFile(r.cur.fi, f.fi) {
				start = i + 1
				break
			}
		}
	}
	closeAll(files[:start])
	return r.readFiles(files[start:])
}

// parseLine parses "<RFC3339Nano> <stream> <text>".
func parseLine(b []byte) (LogLine, bool) {
	ts, rest, ok := bytes.Cut(b, []byte{' '})
	if !ok {
		return LogLine{}, false
	}
	stream, text, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return LogLine{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return LogLine{}, false
	}
	return LogLine{Time: t, Stream: string(stream), Text: string(text)}, true
}
