package monitor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// logWriter appends timestamped lines to dir/current.log and rotates it to
// current.log.1 ... current.log.<maxFiles-1> before it would grow past
// maxSize. It is safe for concurrent use.
type logWriter struct {
	mu       sync.Mutex
	dir      string
	maxSize  int64
	maxFiles int
	f        *os.File
	size     int64
	buf      []byte
	errs     int // write errors so far; the first is reported
	diag     io.Writer
}

func openLogWriter(dir string, maxSize int64, maxFiles int, diag io.Writer) (*logWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	w := &logWriter{dir: dir, maxSize: maxSize, maxFiles: maxFiles, diag: diag}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *logWriter) open() error {
	f, err := os.OpenFile(filepath.Join(w.dir, currentLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, fi.Size()
	return nil
}

// rotatedName is the path of the i-th rotated file (i >= 1).
func rotatedName(dir string, i int) string {
	return filepath.Join(dir, currentLog+"."+strconv.Itoa(i))
}

func (w *logWriter) rotate() error {
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	cur := filepath.Join(w.dir, currentLog)
	if w.maxFiles <= 1 {
		if err := os.Remove(cur); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return w.open()
	}
	for i := w.maxFiles - 1; i >= 2; i-- {
		if err := os.Rename(rotatedName(w.dir, i-1), rotatedName(w.dir, i)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(cur, rotatedName(w.dir, 1)); err != nil {
		return err
	}
	return w.open()
}

// writeLine writes one log line in a single write. Errors (a full disk) are
// counted and the first one reported to diag; the container is never
// blocked or stopped by them.
func (w *logWriter) writeLine(t time.Time, stream string, text []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = t.UTC().AppendFormat(w.buf[:0], time.RFC3339Nano)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, stream...)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, text...)
	w.buf = append(w.buf, '\n')
	var err error
	if w.f == nil {
		err = w.open()
	}
	if err == nil && w.size > 0 && w.size+int64(len(w.buf)) > w.maxSize {
		err = w.rotate()
	}
	if err == nil {
		var n int
		n, err = w.f.Write(w.buf)
		w.size += int64(n)
	}
	if err != nil {
		if w.errs == 0 {
			fmt.Fprintf(w.diag, "berth-monitor: write log: %v\n", err)
		}
		w.errs++
	}
}

func (w *logWriter) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	return err
}

// copyLines reads r until EOF or error and writes each line to w, splitting
// lines longer than MaxLineSize; a last line without a newline is written
// at EOF.
func copyLines(w *logWriter, stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, MaxLineSize)
	split := false // the previous chunk was a split, over-long line
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 && !(split && len(b) == 1 && b[0] == '\n') {
			if b[len(b)-1] == '\n' {
				b = b[:len(b)-1]
			}
			w.writeLine(time.Now(), stream, b)
		}
		split = errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !split {
			return
		}
	}
}
