package candump_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/candump"
)

// sameFrame compares frames field by field (an empty and a nil Data are
// the same).
func sameFrame(a, b can.Frame) bool {
	return a.ID == b.ID && a.Extended == b.Extended && a.Remote == b.Remote && a.Error == b.Error &&
		a.FD == b.FD && a.BRS == b.BRS && a.ESI == b.ESI && a.RemoteLen == b.RemoteLen &&
		bytes.Equal(a.Data, b.Data) && a.Timestamp.Equal(b.Timestamp)
}

// TestParseFrameCanUtilsExamples parses the examples of parse_canframe's
// documentation in can-utils' lib.h, and checks each against the frame
// lib.h says it is and against what candump would write for it.
func TestParseFrameCanUtilsExamples(t *testing.T) {
	for _, c := range []struct {
		in, out string // out: as candump writes the frame
		want    can.Frame
	}{
		{"123#", "123#", can.Frame{ID: 0x123}},
		{"12345678#", "12345678#", can.Frame{ID: 0x12345678, Extended: true}},
		{"123#R", "123#R", can.Frame{ID: 0x123, Remote: true}},
		{"123#R0", "123#R", can.Frame{ID: 0x123, Remote: true}},
		{"123#R7", "123#R7", can.Frame{ID: 0x123, Remote: true, RemoteLen: 7}},
		{"7A1#r", "7A1#R", can.Frame{ID: 0x7A1, Remote: true}},
		{"123#00", "123#00", can.Frame{ID: 0x123, Data: []byte{0}}},
		{"123#1122334455667788", "123#1122334455667788", can.Frame{ID: 0x123, Data: []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}}},
		{"123#11.22.33.44.55.66.77.88", "123#1122334455667788", can.Frame{ID: 0x123, Data: []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}}},
		{"123#11.2233.44556677.88", "123#1122334455667788", can.Frame{ID: 0x123, Data: []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}}},
		{"32345678#112233", "32345678#112233", can.Frame{ID: 0x12345678, Error: true, Data: []byte{0x11, 0x22, 0x33}}},
		{"123##0112233", "123##0112233", can.Frame{ID: 0x123, FD: true, Data: []byte{0x11, 0x22, 0x33}}},
		{"123##1112233", "123##1112233", can.Frame{ID: 0x123, FD: true, BRS: true, Data: []byte{0x11, 0x22, 0x33}}},
		{"123##2112233", "123##2112233", can.Frame{ID: 0x123, FD: true, ESI: true, Data: []byte{0x11, 0x22, 0x33}}},
		{"123##3", "123##3", can.Frame{ID: 0x123, FD: true, BRS: true, ESI: true}},
		// Kernels since 6.2 set CANFD_FDF (4) on received FD frames, and
		// candump prints it: "##5" is BRS on such a kernel.
		{"123##5AA", "123##1AA", can.Frame{ID: 0x123, FD: true, BRS: true, Data: []byte{0xAA}}},
		// The README's cansend examples and candump output.
		{"5A1#11.2233.44556677.88", "5A1#1122334455667788", can.Frame{ID: 0x5A1, Data: []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}}},
		{"1F334455#1122334455667788", "1F334455#1122334455667788", can.Frame{ID: 0x1F334455, Extended: true, Data: []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}}},
		{"00000123#deadbeef", "00000123#DEADBEEF", can.Frame{ID: 0x123, Extended: true, Data: []byte{0xDE, 0xAD, 0xBE, 0xEF}}},
		// An error frame as the kernel reports bus-off (CAN_ERR_BUSOFF 0x40).
		{"20000040#0000000000000000", "20000040#0000000000000000", can.Frame{ID: 0x40, Error: true, Data: make([]byte, 8)}},
	} {
		got, err := candump.ParseFrame(c.in)
		if err != nil {
			t.Errorf("ParseFrame(%q): %v", c.in, err)
			continue
		}
		if !sameFrame(got, c.want) {
			t.Errorf("ParseFrame(%q) = %+v, want %+v", c.in, got, c.want)
		}
		if s := got.String(); s != c.out {
			t.Errorf("ParseFrame(%q).String() = %q, want %q", c.in, s, c.out)
		}
	}
}

// TestFrameRoundTrip writes frames of every kind and reads them back.
func TestFrameRoundTrip(t *testing.T) {
	data64 := make([]byte, 64)
	for i := range data64 {
		data64[i] = byte(i * 7)
	}
	for _, f := range []can.Frame{
		{ID: 0},
		{ID: can.MaxID, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{ID: can.MaxExtendedID, Extended: true, Data: []byte{0xFF}},
		{ID: 0x7FF, Extended: true},
		{ID: 0x321, Remote: true, RemoteLen: 8},
		{ID: 0x18DAF110, Extended: true, Remote: true, RemoteLen: 3},
		{ID: 0x100, FD: true},
		{ID: 0x100, FD: true, BRS: true, ESI: true, Data: data64},
		{ID: 0x18DAF110, Extended: true, FD: true, ESI: true, Data: data64[:12]},
		{ID: 0x4, Error: true, Data: []byte{0, 0x04, 0, 0, 0, 0, 0x80, 0x7F}},
		{ID: can.MaxExtendedID, Error: true},
	} {
		s := f.String()
		got, err := candump.ParseFrame(s)
		if err != nil {
			t.Errorf("ParseFrame(%q) of %+v: %v", s, f, err)
			continue
		}
		if !sameFrame(got, f) {
			t.Errorf("ParseFrame(%q) = %+v, want %+v", s, got, f)
		}
	}
}

func TestParseFrameErrors(t *testing.T) {
	for _, c := range []struct {
		in     string
		col    int
		reason string
	}{
		{"", 1, "the frame is empty"},
		{"123", 4, `no "#" after the ID`},
		{"12G#00", 3, `'G' is not a hex digit in the ID`},
		{"800#00", 1, "ID 800 does not fit in 11 bits: write an extended ID with 8 digits, 00000800"},
		{"1234#00", 1, "the ID has 4 digits"},
		{"C0000000#", 1, "ID C0000000 is above 3FFFFFFF"},
		{"45123#81:00:12345678#11", 1, "CAN XL frames"},
		{"123#ABC", 7, "odd number of hex digits"},
		{"123#A", 5, "odd number of hex digits"},
		{"123#0G", 6, `'G' is not a hex digit in the data`},
		{"123#11..22", 8, `'.' is not a hex digit in the data`},
		{"123#11.", 7, `the data ends with "."`},
		{"123#112233445566778899", 21, "more than 8 data bytes"},
		{"123#1122334455667788_E", 21, `the raw DLC suffix "_E"`},
		{"123#R8_9", 7, `the raw DLC suffix "_9"`},
		{"123#R9", 6, `"9" after R`},
		{"123#Rx", 6, `"x" after R`},
		{"20000004#R", 10, "an error frame cannot be a remote frame"},
		{"20000004##0", 10, "error frames are classical CAN"},
		{"123##", 6, "needs a flags digit"},
		{"123##G00", 6, "'G' is not a hex digit as the CAN FD flags digit"},
		{"123##8", 6, "undefined bit 8"},
		{"123##1" + strings.Repeat("00", 9), 25, "9 data bytes: a CAN FD frame carries 0-8, 12, 16, 20, 24, 32, 48 or 64; pad the data to 12 bytes"},
		{"123##1" + strings.Repeat("00", 65), 135, "more than 64 data bytes"},
		{"123#é", 5, `'é' is not a hex digit`},
	} {
		_, err := candump.ParseFrame(c.in)
		var se *candump.SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, candump.ErrSyntax) {
			t.Errorf("ParseFrame(%q) = %v, want a *SyntaxError", c.in, err)
			continue
		}
		if se.Col != c.col || !strings.Contains(se.Reason, c.reason) {
			t.Errorf("ParseFrame(%q): col %d %q, want col %d containing %q", c.in, se.Col, se.Reason, c.col, c.reason)
		}
		if want := `frame "` + c.in + `": `; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("ParseFrame(%q) error %q does not start with %q", c.in, err, want)
		}
	}
}
