package canbench

import (
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// seqpacket returns the two ends of a unix SOCK_SEQPACKET pair, which
// carries one record per Read and Write as a raw CAN socket does, closed
// at cleanup.
func seqpacket(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// relay copies records from in to out, leaving out those drop says; it
// ends when in is closed.
func relay(in, out *os.File, drop func(n int, rec []byte) bool) {
	b := make([]byte, recordLen)
	for n := 0; ; n++ {
		k, err := in.Read(b)
		if err != nil {
			return
		}
		if !drop(n, b[:k]) {
			out.Write(b[:k])
		}
	}
}

// TestRunChecks: a phase passes on a faithful path and fails, naming the
// fault, on one that loses a frame or lets a foreign ID through. It needs
// no CAN: records cross a relay between two socket pairs.
func TestRunChecks(t *testing.T) {
	isData := func(b []byte) bool { return len(b) == recordLen && b[0] == dataID&0xFF && b[1] == dataID>>8 }
	for _, c := range []struct {
		name  string
		p     phase
		grant bool
		drop  func(n int, rec []byte) bool
		want  string // in the error; "" for none
	}{
		{"faithful", phase{warm: 10, n: 300}, false, func(int, []byte) bool { return false }, ""},
		{"faithful, foreign frames stopped", phase{n: 20, foreign: true}, true, func(_ int, b []byte) bool { return !isData(b) }, ""},
		{"loses one", phase{warm: 10, n: 300}, false, func(n int, b []byte) bool { return n == 100 }, "frame 101 arrived, want 100"},
		{"loses the last", phase{n: 50}, false, func(n int, b []byte) bool { return n == 49 }, "1 of 50 frames lost"},
		{"leaks", phase{n: 20, foreign: true}, true, func(int, []byte) bool { return false }, "frame 0x321 crossed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tx, in := seqpacket(t)
			out, rx := seqpacket(t)
			go relay(in, out, c.drop)
			_, err := direction{tx: tx, rx: rx, grant: c.grant, drain: 200 * time.Millisecond}.run(c.p)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("run: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("run = %v, want an error with %q", err, c.want)
			}
		})
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.4: "999", 1000: "1,000", 44564.2: "44,564", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
}
