// Package candump reads and writes CAN frames as can-utils writes them as
// text: the frame syntax of cansend(1), which is also the frame field of a
// candump(1) log, and candump's log lines (`candump -L`, `candump -l`):
//
//	(1700000000.123456) can0 123#DEADBEEF
//
// Writing a frame is [can.Frame.String]; this package adds the parser
// ([ParseFrame]), log lines ([Record], [ParseRecord]) and a line reader
// for log files ([Reader]) whose errors say file:line:col. Parsing never
// panics and accepts nothing that can.Frame cannot hold.
package candump

import (
	"errors"
	"fmt"
	"strings"

	"github.com/berth-io/berth/devices/can"
)

// ErrSyntax is what every parse error of this package wraps (as a
// [*SyntaxError]).
var ErrSyntax = errors.New("candump syntax error")

// SyntaxError is text that is not a frame or a log line. Reason says what
// is wrong and what to write instead.
type SyntaxError struct {
	// File is the log file, when the text came from one.
	File string
	// Line is the 1-based line in File; 0 for text that is not from a
	// file.
	Line int
	// Col is the 1-based byte column of the problem in the line (in the
	// frame text, for ParseFrame).
	Col int
	// Text is the frame (ParseFrame) or the line (ParseRecord, Reader).
	Text string
	// Reason is the problem, as a sentence without a final period.
	Reason string

	line bool // Text is a log line, not a lone frame
}

// Error returns "FILE:LINE:COL: REASON" for text from a file, else the
// text quoted and the reason.
func (e *SyntaxError) Error() string {
	switch {
	case e.Line > 0 && e.File != "":
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Reason)
	case e.Line > 0:
		return fmt.Sprintf("line %d:%d: %s", e.Line, e.Col, e.Reason)
	case e.line:
		return fmt.Sprintf("log line %q: column %d: %s", e.Text, e.Col, e.Reason)
	}
	return fmt.Sprintf("frame %q: %s", e.Text, e.Reason)
}

// Unwrap returns ErrSyntax.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// errFlag is CAN_ERR_FLAG: an 8-digit ID with it set is an error frame.
const errFlag = 0x20000000

// ParseFrame reads one frame in cansend's syntax, the frame field of a
// candump log:
//
//	123#DEADBEEF         standard (11-bit) ID: 3 hex digits; 0-8 data bytes
//	1F334455#11.22.33    extended (29-bit) ID: 8 hex digits; "." between bytes is allowed
//	123#R  123#R4        remote frame, with the data length it requests (0-8)
//	123##1DEADBEEF       CAN FD: a second "#", then a flags digit (1 BRS,
//	                     2 ESI, 4 FDF, which every FD frame has), then
//	                     0-8, 12, 16, 20, 24, 32, 48 or 64 data bytes
//	20000004#0004000000000000
//	                     error frame: 8 digits with CAN_ERR_FLAG (0x20000000);
//	                     the other bits are the error class (linux/can/error.h)
//
// Hex digits may be upper or lower case. can-utils' raw DLC suffix
// ("123#1122334455667788_E") and CAN XL frames are refused: can.Frame does
// not carry them. The error is a [*SyntaxError]. [can.Frame.String] writes
// the canonical form, which ParseFrame reads back to the same frame.
func ParseFrame(s string) (can.Frame, error) {
	f, col, reason := parseFrame(s)
	if reason != "" {
		return can.Frame{}, &SyntaxError{Col: col + 1, Text: s, Reason: reason}
	}
	return f, nil
}

// parseFrame parses s; on error it returns the 0-based byte offset of the
// problem and the reason.
func parseFrame(s string) (f can.Frame, at int, reason string) {
	if s == "" {
		return f, 0, `the frame is empty: write an ID, "#" and the data, like 123#DEADBEEF`
	}
	hash := strings.IndexByte(s, '#')
	if hash < 0 {
		return f, len(s), `no "#" after the ID: write an ID, "#" and the data, like 123#DEADBEEF`
	}
	id, at, reason := parseHex(s[:hash], 0)
	if reason != "" {
		return f, at, reason + " in the ID"
	}
	switch hash {
	case 3:
		if id > can.MaxID {
			return f, 0, fmt.Sprintf("ID %s does not fit in 11 bits: write an extended ID with 8 digits, %08X", s[:3], id)
		}
		f.ID = uint32(id)
	case 8:
		switch {
		case id&^(errFlag|can.MaxExtendedID) != 0:
			return f, 0, fmt.Sprintf("ID %s is above 3FFFFFFF: write a 29-bit ID (at most 1FFFFFFF), or an error class with 20000000 set", s[:8])
		case id&errFlag != 0:
			f.Error, f.ID = true, uint32(id&can.MaxExtendedID)
		default:
			f.Extended, f.ID = true, uint32(id)
		}
	case 5:
		return f, 0, "CAN XL frames (a 5-digit priority ID) are not supported"
	default:
		return f, 0, fmt.Sprintf("the ID has %d digits: write 3 hex digits for a standard (11-bit) ID or 8 for an extended (29-bit) one", hash)
	}

	at = hash + 1
	rest := s[at:]
	switch {
	case rest != "" && (rest[0] == 'R' || rest[0] == 'r'):
		if f.Error {
			return f, at, "an error frame cannot be a remote frame"
		}
		f.Remote = true
		switch n := rest[1:]; {
		case n == "":
		case len(n) == 1 && n[0] >= '0' && n[0] <= '8':
			f.RemoteLen = n[0] - '0'
		case len(n) > 1 && n[0] == '8' && n[1] == '_':
			return f, at + 2, rawDLC(n[1:])
		default:
			return f, at + 1, fmt.Sprintf("%q after R: a remote frame's requested length is one digit, 0-8 (123#R or 123#R4)", n)
		}
		return f, 0, ""
	case rest != "" && rest[0] == '#':
		if f.Error {
			return f, at, `error frames are classical CAN: write one "#" after the ID`
		}
		f.FD = true
		if len(rest) < 2 {
			return f, at + 1, `a CAN FD frame needs a flags digit after "##": 0 none, 1 BRS, 2 ESI, 3 both (123##1DEADBEEF)`
		}
		flags, _, reason := parseHex(rest[1:2], 0)
		if reason != "" {
			return f, at + 1, reason + ` as the CAN FD flags digit: write 0 none, 1 BRS, 2 ESI, 3 both (123##1DEADBEEF)`
		}
		if flags&8 != 0 {
			return f, at + 1, fmt.Sprintf("CAN FD flags %s set the undefined bit 8: use 0-7 (1 BRS, 2 ESI, 4 FDF)", rest[1:2])
		}
		f.BRS, f.ESI = flags&1 != 0, flags&2 != 0
		at += 2
	}

	data, off, reason := parseData(s[at:], f.FD)
	if reason != "" {
		return can.Frame{}, at + off, reason
	}
	f.Data = data
	return f, 0, ""
}

// parseData reads the data field: hex byte pairs, each optionally preceded
// by one ".", as parse_canframe in can-utils' lib.c reads them.
func parseData(s string, fd bool) (data []byte, at int, reason string) {
	maxLen := can.MaxClassicData
	if fd {
		maxLen = can.MaxFDData
	}
	for i := 0; i < len(s); {
		if s[i] == '.' {
			i++
			if i == len(s) {
				return nil, i - 1, `the data ends with ".": "." goes between bytes`
			}
		}
		if s[i] == '_' && !fd && len(data) == can.MaxClassicData {
			return nil, i, rawDLC(s[i:])
		}
		if i+1 >= len(s) {
			if _, _, r := parseHex(s[i:], i); r != "" {
				return nil, i, r + " in the data"
			}
			return nil, i, "the data has an odd number of hex digits: each byte is two digits (0A, not A)"
		}
		v, off, reason := parseHex(s[i:i+2], i)
		if reason != "" {
			return nil, off, reason + " in the data"
		}
		if len(data) == maxLen {
			if fd {
				return nil, i, "more than 64 data bytes: a CAN FD frame carries at most 64"
			}
			return nil, i, `more than 8 data bytes: a classical frame carries at most 8 (write "##" and a flags digit for CAN FD)`
		}
		data = append(data, byte(v))
		i += 2
	}
	if fd && !can.ValidFDLen(len(data)) {
		pad := len(data)
		for !can.ValidFDLen(pad) {
			pad++
		}
		return nil, len(s), fmt.Sprintf("%d data bytes: a CAN FD frame carries 0-8, 12, 16, 20, 24, 32, 48 or 64; pad the data to %d bytes", len(data), pad)
	}
	return data, 0, ""
}

func rawDLC(suffix string) string {
	return fmt.Sprintf("the raw DLC suffix %q (can-utils' len8_dlc) is not supported: remove it", suffix)
}

// parseHex reads s as hex digits. On error it returns the offset (base +
// the digit's index) and a reason naming the digit.
func parseHex(s string, base int) (v uint64, at int, reason string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, base + i, fmt.Sprintf("%s is not a hex digit", quoteByte(s, i))
		}
		v = v<<4 | uint64(d)
	}
	return v, 0, ""
}

// quoteByte quotes the character at s[i] (the whole rune, when it is one).
func quoteByte(s string, i int) string {
	for _, r := range s[i:] {
		return fmt.Sprintf("%q", r)
	}
	return `""`
}
