package candump_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/candump"
)

// FuzzParseFrame checks that ParseFrame never panics, that its errors
// point into the text, and that what it accepts is a frame can.Frame
// allows, whose canonical form (Frame.String) reads back to the same frame.
// The corpus is in testdata/fuzz/FuzzParseFrame.
func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		"123#DEADBEEF", "12345678#", "123#R", "123#R7", "7a1#r", "123#11.22.33", "32345678#112233",
		"123##1112233", "123##3", "123##5" + strings.Repeat("AB", 64), "20000004#0004000000000000",
		"123#1122334455667788_E", "45123#81:00:12345678#11", "800#", "123#ABC", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fr, err := candump.ParseFrame(s)
		if err != nil {
			var se *candump.SyntaxError
			if !errors.As(err, &se) || se.Col < 1 || se.Col > len(s)+1 || se.Reason == "" {
				t.Fatalf("ParseFrame(%q): error %#v", s, err)
			}
			return
		}
		checkFrame(t, s, fr)
	})
}

// FuzzParseRecord is FuzzParseFrame for whole log lines.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"(1700000000.123456) can0 123#DEADBEEF", "(1436509052.249713)  vcan0 044#2A366C2BBA T",
		"(0000000012.000001) can1 20000004#0004000000000000 R", "(1.123456789)\tcan0\t7DF#0201",
		"(1700000000) can0 123#00", "(1700000000.123456)", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := candump.ParseRecord(s)
		if err != nil {
			var se *candump.SyntaxError
			if !errors.As(err, &se) || se.Col < 1 || se.Col > len(s)+1 || se.Reason == "" {
				t.Fatalf("ParseRecord(%q): error %#v", s, err)
			}
			return
		}
		checkFrame(t, s, r.Frame)
		line := r.String()
		back, err := candump.ParseRecord(line)
		if err != nil {
			t.Fatalf("ParseRecord(%q) = %+v, whose line %q does not parse: %v", s, r, line, err)
		}
		want := r.Frame
		want.Timestamp = want.Timestamp.Truncate(time.Microsecond)
		if back.Interface != r.Interface || back.Dir != r.Dir || !sameFrame(back.Frame, want) || back.String() != line {
			t.Fatalf("ParseRecord(%q) = %+v; its line %q reads back as %+v", s, r, line, back)
		}
	})
}

// checkFrame checks a frame the parser accepted from s.
func checkFrame(t *testing.T, s string, fr can.Frame) {
	t.Helper()
	if fr.Error {
		if fr.FD || fr.Remote || fr.Extended || fr.ID > can.MaxExtendedID || len(fr.Data) > can.MaxClassicData {
			t.Fatalf("ParseFrame(%q) = impossible error frame %+v", s, fr)
		}
	} else if err := fr.Validate(can.FD); err != nil {
		t.Fatalf("ParseFrame(%q) = %+v, which is not a valid frame: %v", s, fr, err)
	}
	out := fr.String()
	back, err := candump.ParseFrame(out)
	if err != nil {
		t.Fatalf("ParseFrame(%q) = %+v, whose String %q does not parse: %v", s, fr, out, err)
	}
	fr.Timestamp = time.Time{}
	if !sameFrame(back, fr) || back.String() != out {
		t.Fatalf("ParseFrame(%q) = %+v; String %q reads back as %+v", s, fr, out, back)
	}
}
