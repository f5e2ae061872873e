package broker

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Grant is what one container may do with one CAN bus: a playbook's
//
//	can "body" {
//	  bus          = "can0"
//	  receive      = ["0x100-0x1FF", "0x7DF"]
//	  send         = ["0x7E0"]
//	  send_rate    = 100
//	  send_burst   = 10
//	  fd           = true
//	  error_frames = true
//	}
//
// A container may hold several grants, on one bus or several; each
// session ([Broker.Open]) carries exactly one.
type Grant struct {
	// Name is the playbook's label for the grant ("body"); the container
	// names it when it opens its device socket.
	Name string
	// Device is the board device the grant is on ("can0").
	Device string
	// Receive selects the frames the session receives; empty receives
	// none.
	Receive Filters
	// Send lists the IDs the session may send; empty sends none.
	Send Filters
	// SendRate bounds the session's sends; the zero Rate is unlimited.
	SendRate Rate
	// FD makes the session a CAN FD session when the bus runs CAN FD: it
	// may send FD frames and receives them. Without it the session is a
	// classical handle, like a SocketCAN socket without CAN_RAW_FD_FRAMES:
	// FD frames are refused on send and not delivered.
	FD bool
	// ErrorFrames delivers the controller's error frames (bus-off, error
	// passive, ...) to the session. Receive does not apply to them: an
	// error frame's ID carries error classes, not an identifier.
	ErrorFrames bool
}

// String returns the grant as a playbook writes it, on one line.
func (g Grant) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "can %q { bus = %q, receive = %s, send = %s", g.Name, g.Device, quoteList(g.Receive), quoteList(g.Send))
	if !g.SendRate.Unlimited() {
		fmt.Fprintf(&b, ", send_rate = %s, send_burst = %d", strconv.FormatFloat(g.SendRate.PerSecond, 'g', -1, 64), g.SendRate.burst())
	}
	if g.FD {
		b.WriteString(", fd = true")
	}
	if g.ErrorFrames {
		b.WriteString(", error_frames = true")
	}
	b.WriteString(" }")
	return b.String()
}

func quoteList(fs Filters) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = strconv.Quote(f.String())
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Validate checks the grant; the error wraps [ErrInvalidGrant] (and
// [ErrInvalidFilter] for a bad filter).
func (g Grant) Validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("grant %q: %w: %s", g.Name, ErrInvalidGrant, fmt.Sprintf(format, args...))
	}
	switch {
	case g.Name == "":
		return fail("it has no name")
	case g.Device == "":
		return fail("it names no bus")
	case math.IsNaN(g.SendRate.PerSecond) || math.IsInf(g.SendRate.PerSecond, 0) || g.SendRate.PerSecond < 0:
		return fail("send rate %v is not a number of frames per second >= 0", g.SendRate.PerSecond)
	case g.SendRate.Burst < 0:
		return fail("send burst %d is negative", g.SendRate.Burst)
	}
	for _, list := range []struct {
		name string
		fs   Filters
	}{{"receive", g.Receive}, {"send", g.Send}} {
		for _, f := range list.fs {
			if err := f.Validate(); err != nil {
				return fmt.Errorf("grant %q: %w: %s: %w", g.Name, ErrInvalidGrant, list.name, err)
			}
		}
	}
	return nil
}

// Rate is a send rate: a token bucket that refills at PerSecond frames a
// second and holds up to Burst frames. The zero Rate is unlimited.
type Rate struct {
	// PerSecond is the sustained rate in frames a second; 0 is unlimited.
	PerSecond float64
	// Burst is how many frames may go back to back; 0 means a tenth of a
	// second's worth, at least 1.
	Burst int
}

// Unlimited reports whether r sets no limit.
func (r Rate) Unlimited() bool { return r.PerSecond == 0 }

func (r Rate) burst() int {
	if r.Burst > 0 {
		return r.Burst
	}
	return max(1, int(math.Ceil(r.PerSecond/10)))
}

// String returns "100 frames/s, burst 10" or "unlimited".
func (r Rate) String() string {
	if r.Unlimited() {
		return "unlimited"
	}
	return fmt.Sprintf("%s frames/s, burst %d", strconv.FormatFloat(r.PerSecond, 'g', -1, 64), r.burst())
}
