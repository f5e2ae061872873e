package candump_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/candump"
)

// TestParseRecordCandumpLines reads lines as candump writes them: -L to
// stdout, -l to a file with several interfaces (names right-aligned), -x
// (T/R), and error and CAN FD frames.
func TestParseRecordCandumpLines(t *testing.T) {
	at := func(sec, usec int64) time.Time { return time.Unix(sec, usec*1000) }
	for _, c := range []struct {
		line string
		want candump.Record
	}{
		{"(1700000000.123456) can0 123#DEADBEEF",
			candump.Record{Interface: "can0", Frame: can.Frame{ID: 0x123, Data: []byte{0xDE, 0xAD, 0xBE, 0xEF}, Timestamp: at(1700000000, 123456)}}},
		{"(1436509052.249713)  vcan0 044#2A366C2BBA",
			candump.Record{Interface: "vcan0", Frame: can.Frame{ID: 0x44, Data: []byte{0x2A, 0x36, 0x6C, 0x2B, 0xBA}, Timestamp: at(1436509052, 249713)}}},
		{"(1436509052.650298) vcan10 1F334455#R T",
			candump.Record{Interface: "vcan10", Dir: "T", Frame: can.Frame{ID: 0x1F334455, Extended: true, Remote: true, Timestamp: at(1436509052, 650298)}}},
		{"(0000000012.000001) can1 20000004#0004000000000000 R",
			candump.Record{Interface: "can1", Dir: "R", Frame: can.Frame{ID: 4, Error: true, Data: []byte{0, 4, 0, 0, 0, 0, 0, 0}, Timestamp: at(12, 1)}}},
		{"(1700000000.000000) can0 18DAF110##5" + strings.Repeat("11", 12),
			candump.Record{Interface: "can0", Frame: can.Frame{ID: 0x18DAF110, Extended: true, FD: true, BRS: true, Data: []byte(strings.Repeat("\x11", 12)), Timestamp: at(1700000000, 0)}}},
		// Tabs, and a nanosecond fraction.
		{"(1.123456789)\tcan0\t7DF#0201", candump.Record{Interface: "can0", Frame: can.Frame{ID: 0x7DF, Data: []byte{2, 1}, Timestamp: time.Unix(1, 123456789)}}},
	} {
		got, err := candump.ParseRecord(c.line)
		if err != nil {
			t.Errorf("ParseRecord(%q): %v", c.line, err)
			continue
		}
		if got.Interface != c.want.Interface || got.Dir != c.want.Dir || !sameFrame(got.Frame, c.want.Frame) {
			t.Errorf("ParseRecord(%q) = %+v, want %+v", c.line, got, c.want)
		}
	}
}

func TestRecordString(t *testing.T) {
	for _, c := range []struct {
		r    candump.Record
		want string
	}{
		{candump.Record{Interface: "can0", Frame: can.Frame{ID: 0x123, Data: []byte{0xDE, 0xAD}, Timestamp: time.Unix(1700000000, 123456789)}},
			"(1700000000.123456) can0 123#DEAD"},
		{candump.Record{Interface: "body", Dir: "T", Frame: can.Frame{ID: 0x18DAF110, Extended: true, Remote: true, RemoteLen: 8, Timestamp: time.Unix(5, 1000)}},
			"(0000000005.000001) body 18DAF110#R8 T"},
		{candump.Record{Interface: "can0", Frame: can.Frame{ID: 0x40, Error: true, Data: make([]byte, 8)}},
			"(0000000000.000000) can0 20000040#0000000000000000"},
		{candump.Record{Interface: "can1", Frame: can.Frame{ID: 0x100, FD: true, ESI: true, Data: []byte{1}, Timestamp: time.Unix(-5, 0)}},
			"(0000000000.000000) can1 100##201"},
	} {
		if got := c.r.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.r, got, c.want)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, line := range []string{
		"(1700000000.123456) can0 123#DEADBEEF",
		"(1700000000.999999) vcan0 1FFFFFFF#R",
		"(0000000001.000000) can1 000##3",
		"(1700000000.000001) can0 20000100#0000000000000000 R",
	} {
		r, err := candump.ParseRecord(line)
		if err != nil {
			t.Fatalf("ParseRecord(%q): %v", line, err)
		}
		if got := r.String(); got != line {
			t.Errorf("ParseRecord(%q).String() = %q", line, got)
		}
	}
}

func TestParseRecordErrors(t *testing.T) {
	for _, c := range []struct {
		line   string
		col    int
		reason string
	}{
		{"123#00", 1, "starts with the time in parentheses"},
		{"can0 123#00", 1, "starts with the time in parentheses"},
		{"(1700000000.123456 can0 123#00", 19, `no ")" after the time`},
		{"(1700000000.123456)can0 123#00", 20, `no space after the time's ")"`},
		{"(1700000000) can0 123#00", 2, "has no fraction"},
		{"(17x0000000.123456) can0 123#00", 4, `the time's seconds "17x0000000" are not a decimal number`},
		{"(.123456) can0 123#00", 2, "are not a decimal number"},
		{"(1700000000.12345a) can0 123#00", 18, "is not 1-9 decimal digits"},
		{"(1700000000.1234567890) can0 123#00", 13, "is not 1-9 decimal digits"},
		{"(99999999999999999999.0) can0 123#00", 2, "out of range"},
		{"(1700000000.123456)", 20, "the line ends after the time"},
		{"(1700000000.123456) can0", 25, `no frame after the interface "can0"`},
		{"(1700000000.123456) can0 123#0G", 31, `'G' is not a hex digit in the data`},
		{"(1700000000.123456) can0 123#00 X", 33, `"X" after the frame`},
		{"(1700000000.123456) can0 123#00 T extra", 33, `"T extra" after the frame`},
	} {
		_, err := candump.ParseRecord(c.line)
		var se *candump.SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ParseRecord(%q) = %v, want a *SyntaxError", c.line, err)
			continue
		}
		if se.Col != c.col || !strings.Contains(se.Reason, c.reason) {
			t.Errorf("ParseRecord(%q): col %d %q, want col %d containing %q", c.line, se.Col, se.Reason, c.col, c.reason)
		}
		if !strings.HasPrefix(err.Error(), "log line ") {
			t.Errorf("ParseRecord(%q): error %q", c.line, err)
		}
	}
}

func TestReader(t *testing.T) {
	log := "# recorded on the test bench\n" +
		"\n" +
		"(1700000000.000100) can0 100#01\r\n" +
		"DROPCOUNT: dropped 3 CAN frames on 'can0' socket (total drops 3)\n" +
		"   \n" +
		"(1700000000.000200)  can1 18FEF100#0102\n"
	r := candump.NewReader(strings.NewReader(log), "bench.log")
	var lines []int
	var got []string
	for r.Scan() {
		lines = append(lines, r.Line())
		got = append(got, r.Record().String())
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"(1700000000.000100) can0 100#01", "(1700000000.000200) can1 18FEF100#0102"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(lines) != 2 || lines[0] != 3 || lines[1] != 6 {
		t.Errorf("read %q at lines %v, want %q at lines [3 6]", got, lines, want)
	}
}

func TestReaderErrors(t *testing.T) {
	r := candump.NewReader(strings.NewReader("(1.000000) can0 100#01\n(2.000000) can0 100#0\n(3.000000) can0 100#02\n"), "demo.log")
	n := 0
	for r.Scan() {
		n++
	}
	err := r.Err()
	if n != 1 || err == nil || err.Error() != "demo.log:2:21: the data has an odd number of hex digits: each byte is two digits (0A, not A)" {
		t.Errorf("read %d records, error %v", n, err)
	}
	if r.Scan() {
		t.Error("Scan after an error returned true")
	}

	r = candump.NewReader(strings.NewReader("(1.000000) can0 100#01\n"+strings.Repeat("x", 5000)+"\n"), "big.log")
	for r.Scan() {
	}
	if err := r.Err(); err == nil || !strings.HasPrefix(err.Error(), "big.log:2:") || !strings.Contains(err.Error(), "not a candump log") {
		t.Errorf("long line: %v", err)
	}

	r = candump.NewReader(failingReader{}, "broken.log")
	if r.Scan() || !errors.Is(r.Err(), io.ErrUnexpectedEOF) || !strings.Contains(r.Err().Error(), "read broken.log") {
		t.Errorf("failing reader: %v", r.Err())
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
