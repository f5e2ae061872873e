package canwire_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/berth-io/berth/core/broker"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
	"github.com/berth-io/berth/devices/can/canwire"
)

// subscribeOnly is a broker session whose Receive fails, so a session
// that works through it proves the server took the can.Subscriber path.
type subscribeOnly struct {
	can.Bus
	can.Subscriber
}

func (subscribeOnly) Receive(context.Context) (can.Stream, error) {
	return nil, errors.New("Receive called: the server should have subscribed")
}

// TestSubscribedSlowClient serves broker sessions, which the server
// subscribes to: a client that never reads its socket loses only its own
// frames, counted as its session's drops, while the other clients get
// every frame in order.
func TestSubscribedSlowClient(t *testing.T) {
	ctx := testCtx(t)
	d := cantest.NewDriver()
	bus := d.Add("can0", cantest.NewBus(can.Classical))
	b := broker.New(d, broker.WithDepth(64))
	defer b.Close()
	path := serve(t, func(ctx context.Context, grant string) (can.Bus, error) {
		s, err := b.Open(ctx, grant, broker.Grant{Name: "all", Device: "can0", Receive: broker.Filters{broker.AnyID()}})
		if err != nil {
			return nil, err
		}
		sub, ok := s.(can.Subscriber)
		if !ok {
			_ = s.Close()
			return nil, fmt.Errorf("broker session %T is not a can.Subscriber", s)
		}
		return subscribeOnly{s, sub}, nil
	})

	slow := rawDial(t, path, canwire.FlagTimestamp, "can slow")
	readMsg(t, slow) // hello answer; then never read again
	var streams []can.Stream
	for _, name := range []string{"fast1", "fast2"} {
		_, s := openReceiving(t, ctx, path, name, canwire.WithoutRedial())
		streams = append(streams, s)
	}
	// Far more than the slow socket's buffer holds, a batch at a time as
	// fast as the fast readers take them.
	const n, batch = 20000, 100
	got := make([]int, len(streams))
	for sent := 0; sent < n; sent += batch {
		frames := make([]can.Frame, batch)
		for j := range frames {
			i := sent + j
			frames[j] = can.Frame{ID: 0x100, Data: []byte{byte(i >> 16), byte(i >> 8), byte(i)}}
		}
		bus.Inject(frames...)
		for k, s := range streams {
			for got[k] < sent+batch {
				fs, err := s.Recv()
				if err != nil {
					t.Fatalf("fast reader %d after %d of %d frames: %v", k, got[k], n, err)
				}
				for _, f := range fs {
					if seq := int(f.Data[0])<<16 | int(f.Data[1])<<8 | int(f.Data[2]); seq != got[k] {
						t.Fatalf("fast reader %d: frame %d out of order (want %d)", k, seq, got[k])
					}
					got[k]++
				}
			}
		}
	}
	stats := b.Stats()[0].Sessions
	if len(stats) != 3 {
		t.Fatalf("sessions %+v, want 3", stats)
	}
	for _, st := range stats {
		if st.Received != n || st.Delivered+st.Dropped != n {
			t.Errorf("session %s: %+v, want %d received, each delivered or dropped", st.Container, st, n)
		}
		switch st.Container {
		case "slow":
			if st.Dropped == 0 {
				t.Errorf("slow session %+v: want drops", st)
			}
		default:
			if st.Dropped != 0 {
				t.Errorf("session %s lost %d frames, want none", st.Container, st.Dropped)
			}
		}
	}
}

// TestSubscribedSessionClosed: when the broker closes a subscribed
// session, its client hears can.ErrClosed, as with a stream.
func TestSubscribedSessionClosed(t *testing.T) {
	ctx := testCtx(t)
	d := cantest.NewDriver()
	d.Add("can0", cantest.NewBus(can.Classical))
	b := broker.New(d)
	defer b.Close()
	path := serve(t, func(ctx context.Context, grant string) (can.Bus, error) {
		return b.Open(ctx, "app", broker.Grant{Name: grant, Device: "can0", Receive: broker.Filters{broker.AnyID()}})
	})
	_, s := openReceiving(t, ctx, path, "all", canwire.WithoutRedial())
	_ = b.Close()
	if _, err := s.Recv(); !errors.Is(err, can.ErrClosed) {
		t.Errorf("client stream after the broker closed its session: %v, want can.ErrClosed", err)
	}
}
