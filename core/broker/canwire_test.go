package broker

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/canwire"
)

// TestCanwire serves broker sessions on a device socket, as berthd will,
// and checks that a container's client gets its grant's frames and the
// grant's refusal, with its text and sentinel, across the socket.
func TestCanwire(t *testing.T) {
	ctx := testCtx(t)
	drv, bus := newFake(can.Classical)
	b := New(drv)
	defer b.Close()
	grants := map[string]Grant{
		"body": {Name: "body", Device: "can0", Receive: Filters{Range(0x100, 0x1FF, false)}, Send: Filters{Range(0x100, 0x1FF, false)}},
	}
	path := filepath.Join(t.TempDir(), "device.sock")
	l, err := net.Listen(canwire.Network, path)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- canwire.Serve(sctx, l, func(ctx context.Context, grant string) (can.Bus, error) {
			g, ok := grants[grant]
			if !ok {
				return nil, canwire.ErrUnknownGrant
			}
			return b.Open(ctx, "app", g)
		})
	}()
	defer func() { stop(); <-served }()

	c, err := canwire.OpenBus(ctx, path, "body")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := mustReceive(t, ctx, c)
	wire := bus.Open()
	defer wire.Close()
	ws := mustReceive(t, ctx, wire)

	bus.Inject(can.Frame{ID: 0x300}, can.Frame{ID: 0x150, Data: []byte{1}})
	if got := collect(t, s, 1); got[0].ID != 0x150 {
		t.Errorf("container got %s, want only 0x150", got[0])
	}
	err = c.Send(ctx, can.Frame{ID: 0x321})
	if !errors.Is(err, canwire.ErrPermissionDenied) ||
		!strings.Contains(err.Error(), `container app: grant "body" does not allow sending 0x321: its send list is 0x100-0x1FF`) {
		t.Errorf("refused send through the socket: %v", err)
	}
	if err := c.Send(ctx, can.Frame{ID: 0x1AB, Data: []byte{2}}); err != nil {
		t.Fatal(err)
	}
	// The other node saw the two injected frames, then the container's.
	if got := collect(t, ws, 3); got[2].ID != 0x1AB {
		t.Errorf("the bus got %v, want 0x1AB last", got)
	}
}
