package canwire

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/berth-io/berth/devices/can"
)

func TestRecordRoundTrip(t *testing.T) {
	ts := time.Unix(1700000000, 987654321)
	for _, f := range []can.Frame{
		{ID: 0x123, Data: []byte{0xDE, 0xAD}},
		{ID: 0x1FFFFFFF, Extended: true, Data: make([]byte, 8)},
		{ID: 0x7FF, Remote: true, RemoteLen: 8},
		{ID: 0x40, Error: true, Data: []byte{0, 1, 2, 3, 4, 5, 6, 7}},
		{ID: 0x1, FD: true},
		{ID: 0x1ABCDE, Extended: true, FD: true, BRS: true, ESI: true, Data: bytes.Repeat([]byte{3}, 64)},
	} {
		for _, withTS := range []bool{false, true} {
			in := f
			if withTS {
				in.Timestamp = ts
			}
			b := appendFrame(nil, in, withTS)
			if want := recordSize(b, withTS); len(b) != want {
				t.Errorf("%s: record of %d bytes, recordSize says %d", f, len(b), want)
			}
			got, err := decodeRecord(b, withTS)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if got.String() != f.String() || got.BRS != f.BRS || got.ESI != f.ESI || got.Error != f.Error ||
				!got.Timestamp.Equal(in.Timestamp) {
				t.Errorf("round trip of %s %+v gave %s %+v", f, in, got, got)
			}
		}
	}
}

func TestDecodeClientMessage(t *testing.T) {
	for _, c := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"short", []byte{1, 2, 3}, can.ErrInvalidLength},
		{"can_frame len 9", append([]byte{1, 0, 0, 0, 9}, make([]byte, 11)...), can.ErrInvalidLength},
		{"canfd_frame len 65", append([]byte{1, 0, 0, 0, 65, 4}, make([]byte, 66)...), can.ErrInvalidLength},
		{"canfd_frame unknown flags", append([]byte{1, 0, 0, 0, 1, 0x80}, make([]byte, 66)...), can.ErrInvalidFlags},
		{"timestamped record", make([]byte, FrameSize+TimestampSize), can.ErrInvalidLength},
		{"server kind", appendControl(nil, control{Kind: KindResult}), ErrProtocol},
		{"short control", []byte{0xFF, 0xFF, 0xFF, 0xFF, 4}, ErrProtocol},
	} {
		if _, _, err := decodeClientMessage(c.msg); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, ctl, err := decodeClientMessage(appendControl(nil, control{Kind: KindCounters, Seq: 9})); err != nil || ctl == nil || ctl.Kind != KindCounters {
		t.Errorf("counters query: %+v, %v", ctl, err)
	}
}

func TestHello(t *testing.T) {
	h := Hello{Flags: FlagFD | FlagAck, Class: "can", Grant: "body"}
	got, err := decodeHello(appendHello(nil, h))
	if err != nil || got != h {
		t.Fatalf("hello round trip: %+v, %v; want %+v", got, err, h)
	}
	for _, bad := range []Hello{
		{Class: "can", Grant: "two words"},
		{Class: "can", Grant: "tab\t"},
		{Flags: 0x80, Class: "can", Grant: "x"},
	} {
		if _, err := decodeHello(appendHello(nil, bad)); !errors.Is(err, ErrProtocol) {
			t.Errorf("hello %+v: %v, want ErrProtocol", bad, err)
		}
	}
}

// FuzzServerDecode feeds arbitrary bytes to everything the server decodes
// from a client: it must never panic, and what it accepts must encode back
// to an equivalent message.
func FuzzServerDecode(f *testing.F) {
	f.Add(appendHello(nil, Hello{Flags: FlagAck, Class: "can", Grant: "body"}))
	f.Add(appendFrame(nil, can.Frame{ID: 0x123, Data: []byte{1, 2}}, false))
	f.Add(appendFrame(nil, can.Frame{ID: 0x123, Extended: true, FD: true, BRS: true, Data: make([]byte, 64)}, false))
	f.Add(appendFrame(nil, can.Frame{ID: 0x7, Remote: true, RemoteLen: 3}, false))
	f.Add(appendControl(nil, control{Kind: KindState, Seq: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := decodeHello(b); err == nil {
			if again, err := decodeHello(appendHello(nil, h)); err != nil || again != h {
				t.Fatalf("hello %+v re-encoded decodes as %+v, %v", h, again, err)
			}
		}
		fr, ctl, err := decodeClientMessage(b)
		if err != nil || ctl != nil {
			return
		}
		again, _, err := decodeClientMessage(appendFrame(nil, fr, false))
		if err != nil || again.String() != fr.String() || again.BRS != fr.BRS || again.ESI != fr.ESI {
			t.Fatalf("frame %s re-encoded decodes as %s, %v", fr, again, err)
		}
		// Records with a trailer, as the client decodes them.
		_, _ = decodeRecords(b, true)
		_, _ = decodeRecords(b, false)
	})
}
