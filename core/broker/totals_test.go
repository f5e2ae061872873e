package broker

import (
	"testing"

	"github.com/berth-io/berth/devices/can"
)

// TestTotals checks that a container grant's row sums its sessions, open
// and closed, keeps what closed sessions counted (a refusal by a session
// that then closed, as `berth exec … cantool send` makes) and outlives the
// device's last session; and that Stats shows only what is open.
func TestTotals(t *testing.T) {
	ctx := testCtx(t)
	drv, bus := newFake(can.Classical)
	b := New(drv)
	defer b.Close()
	send, err := ParseFilters([]string{"0x2A0"})
	if err != nil {
		t.Fatal(err)
	}
	body := Grant{Name: "body", Device: "can0", Receive: Filters{AnyID()}, Send: send}
	reader := mustOpen(t, ctx, b, "cars/body", body)
	rs := mustReceive(t, ctx, reader)
	sender := mustOpen(t, ctx, b, "cars/body", body)
	other := mustOpen(t, ctx, b, "cars/speedo", allowAll("powertrain", "can0"))

	bus.Inject(marker(1))
	collect(t, rs, 1)
	if err := sender.Send(ctx, can.Frame{ID: 0x2A0}); err != nil {
		t.Fatal(err)
	}
	if err := sender.Send(ctx, can.Frame{ID: 0x7DF}); err == nil {
		t.Fatal("send of 0x7DF outside the grant: nil error")
	}
	sender.Close()

	// body's filter selected the marker in both its sessions and the
	// sender's 0x2A0 in the reader, which returned the marker so far;
	// speedo's selected both frames.
	rows := b.Totals()["can0"]
	want := []SessionStats{
		{Container: "cars/body", Grant: "body", Open: 1, Received: 3, Delivered: 1, Sent: 1, Refused: 1},
		{Container: "cars/speedo", Grant: "powertrain", Open: 1, Received: 2},
	}
	if len(rows) != len(want) || rows[0] != want[0] || rows[1] != want[1] {
		t.Errorf("totals with the sender closed:\n got %+v\nwant %+v", rows, want)
	}
	if st := b.Stats()[0].Sessions; len(st) != 2 {
		t.Errorf("Stats lists %d sessions, want the 2 open ones", len(st))
	}

	reader.Close()
	other.Close()
	if len(b.Stats()) != 0 {
		t.Errorf("Stats after every session closed: %+v", b.Stats())
	}
	want[0].Open, want[1].Open = 0, 0
	if rows := b.Totals()["can0"]; len(rows) != 2 || rows[0] != want[0] || rows[1] != want[1] {
		t.Errorf("totals after every session closed:\n got %+v\nwant %+v", rows, want)
	}

	// The container comes back: its new session adds to the same row.
	again := mustOpen(t, ctx, b, "cars/body", body)
	defer again.Close()
	if err := again.Send(ctx, can.Frame{ID: 0x2A0}); err != nil {
		t.Fatal(err)
	}
	want[0].Open, want[0].Sent = 1, 2
	if rows := b.Totals()["can0"]; len(rows) != 2 || rows[0] != want[0] {
		t.Errorf("totals after the container came back: %+v, want %+v first", rows, want[0])
	}
}
