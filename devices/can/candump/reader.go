package candump

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxLine bounds a log line: the longest candump line (an interface name
// and a 64-byte CAN FD frame) is under 200 bytes.
const maxLine = 4096

// Reader reads a candump log one record at a time, in the manner of
// bufio.Scanner. It skips blank lines, comment lines starting with "#",
// and the "DROPCOUNT: ..." notes candump writes among the frames; every
// other line must be a record (see [ParseRecord]). The caller owns the
// underlying reader.
type Reader struct {
	sc   *bufio.Scanner
	name string
	line int
	rec  Record
	err  error
}

// NewReader returns a Reader of r; name (usually the file's path) starts
// the errors' "name:line:col".
func NewReader(r io.Reader, name string) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxLine)
	return &Reader{sc: sc, name: name}
}

// Scan reads the next record. It returns false at the end of the input or
// at the first error; Err then says which.
func (r *Reader) Scan() bool {
	if r.err != nil {
		return false
	}
	for r.sc.Scan() {
		r.line++
		text := strings.TrimSuffix(r.sc.Text(), "\r")
		trimmed := strings.TrimSpace(text)
		if trimmed == "" || trimmed[0] == '#' || strings.HasPrefix(trimmed, "DROPCOUNT:") {
			continue
		}
		rec, col, reason := parseRecord(text)
		if reason != "" {
			r.err = &SyntaxError{File: r.name, Line: r.line, Col: col + 1, Text: text, Reason: reason, line: true}
			return false
		}
		r.rec = rec
		return true
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			r.err = &SyntaxError{File: r.name, Line: r.line + 1, Col: maxLine, Reason: fmt.Sprintf("the line is longer than %d bytes: this is not a candump log", maxLine), line: true}
		} else {
			r.err = fmt.Errorf("read %s: %w", r.name, err)
		}
	}
	return false
}

// Record returns the record the last successful Scan read.
func (r *Reader) Record() Record { return r.rec }

// Line returns the 1-based line number of the record the last Scan read.
func (r *Reader) Line() int { return r.line }

// Err returns the first error, nil at a clean end of the input.
func (r *Reader) Err() error { return r.err }
