package candump

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/berth-io/berth/devices/can"
)

// Record is one line of a candump log: a frame, with the time it was
// received in Frame.Timestamp, and the interface it was seen on.
type Record struct {
	// Interface is the CAN interface (or berth bus) name: no spaces.
	Interface string
	// Frame is the frame; its Timestamp is the line's time.
	Frame can.Frame
	// Dir is "T" (sent by the logging host) or "R" (received) where
	// `candump -x` wrote it; empty otherwise.
	Dir string
}

// String formats r as `candump -L` writes a line, without the newline:
// "(1700000000.123456) can0 123#DEADBEEF". The time is cut to the
// microsecond, as candump's is; a zero or pre-1970 time is written as 0.
func (r Record) String() string {
	var sec, usec int64
	if ts := r.Frame.Timestamp; !ts.IsZero() && ts.Unix() >= 0 {
		sec, usec = ts.Unix(), int64(ts.Nanosecond()/1000)
	}
	s := fmt.Sprintf("(%010d.%06d) %s %s", sec, usec, r.Interface, r.Frame)
	if r.Dir != "" {
		s += " " + r.Dir
	}
	return s
}

// ParseRecord reads one log line as candump -L and -l write it:
//
//	(1700000000.123456) can0 123#DEADBEEF
//	(1700000000.123456)  vcan0 12345678#R T
//
// The time is seconds since the Unix epoch with a fraction of 1-9 digits
// (candump writes 6); the interface may be padded with spaces (candump
// right-aligns names when it logs several interfaces); the frame is as
// [ParseFrame] reads it; a last field "T" or "R" (candump -x) is kept in
// Dir. The error is a [*SyntaxError] whose Col points into line.
func ParseRecord(line string) (Record, error) {
	r, col, reason := parseRecord(line)
	if reason != "" {
		return Record{}, &SyntaxError{Col: col + 1, Text: line, Reason: reason, line: true}
	}
	return r, nil
}

const lineExample = "(1700000000.123456) can0 123#DEADBEEF"

func parseRecord(line string) (r Record, at int, reason string) {
	fields, starts := split(line)
	if len(fields) == 0 {
		return r, 0, "the line is empty: write " + lineExample
	}
	ts, off, reason := parseTime(fields[0])
	if reason != "" {
		return r, starts[0] + off, reason
	}
	switch {
	case len(fields) == 1:
		return r, len(line), "the line ends after the time: write the interface and the frame after it, as in " + lineExample
	case len(fields) == 2:
		return r, len(line), fmt.Sprintf("no frame after the interface %q: write it as in %s", fields[1], lineExample)
	case len(fields) == 4 && fields[3] != "T" && fields[3] != "R", len(fields) > 4:
		return r, starts[3], fmt.Sprintf("%q after the frame: a line ends with the frame, or with T or R (candump -x)", strings.Join(fields[3:], " "))
	}
	f, off, reason := parseFrame(fields[2])
	if reason != "" {
		return r, starts[2] + off, reason
	}
	f.Timestamp = ts
	r = Record{Interface: fields[1], Frame: f}
	if len(fields) == 4 {
		r.Dir = fields[3]
	}
	return r, 0, ""
}

// split cuts line at spaces and tabs and returns the fields and their
// byte offsets.
func split(line string) (fields []string, starts []int) {
	start := -1
	for i := 0; i <= len(line); i++ {
		space := i == len(line) || line[i] == ' ' || line[i] == '\t'
		switch {
		case space && start >= 0:
			fields, starts = append(fields, line[start:i]), append(starts, start)
			start = -1
		case !space && start < 0:
			start = i
		}
	}
	return fields, starts
}

// parseTime reads "(SECONDS.FRACTION)".
func parseTime(s string) (t time.Time, at int, reason string) {
	if s[0] != '(' {
		return t, 0, "a log line starts with the time in parentheses: write " + lineExample
	}
	end := strings.IndexByte(s, ')')
	if end < 0 {
		return t, len(s), `no ")" after the time: write it as (1700000000.123456)`
	}
	if end != len(s)-1 {
		return t, end + 1, `no space after the time's ")"`
	}
	body := s[1:end]
	dot := strings.IndexByte(body, '.')
	if dot < 0 {
		return t, 1, fmt.Sprintf("the time %q has no fraction: write seconds.microseconds, like 1700000000.123456", body)
	}
	secs, frac := body[:dot], body[dot+1:]
	if i := nonDigit(secs); i >= 0 || secs == "" {
		return t, 1 + max(i, 0), fmt.Sprintf("the time's seconds %q are not a decimal number", secs)
	}
	if i := nonDigit(frac); i >= 0 || frac == "" || len(frac) > 9 {
		return t, 2 + dot + max(i, 0), fmt.Sprintf("the time's fraction %q is not 1-9 decimal digits (candump writes 6: microseconds)", frac)
	}
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || sec > maxSeconds {
		return t, 1, fmt.Sprintf("the time's seconds %s are out of range", secs)
	}
	nsec, _ := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	return time.Unix(sec, nsec), 0, ""
}

// maxSeconds keeps a time's UnixNano in range (the year 2262).
const maxSeconds = math.MaxInt64/int64(time.Second) - 1

// nonDigit returns the index of the first byte of s that is not 0-9, or -1.
func nonDigit(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return i
		}
	}
	return -1
}
