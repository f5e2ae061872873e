package playbook

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/berth-io/berth/core/board"
	"github.com/berth-io/berth/core/broker"
)

func grantOf(t *testing.T, pb *Playbook, container, name string) Grant {
	t.Helper()
	c := pb.Stack.Container(container)
	if c == nil {
		t.Fatalf("no container %q", container)
	}
	for _, g := range c.Grants {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("container %q has no grant %q: %+v", container, name, c.Grants)
	return Grant{}
}

func TestCANGrantDecoded(t *testing.T) {
	pb := mustLoad(t, "can-grants.hcl", nil)

	body := grantOf(t, pb, "gateway", "body")
	want := broker.Grant{
		Name: "body", Device: "can0",
		Receive: broker.Filters{
			broker.Range(0x100, 0x1FF, false), broker.Single(0x7DF, false),
			broker.Mask(0x18DAF100, 0x1FFFFF00, true), broker.Single(0x123, true),
		},
		Send:     broker.Filters{broker.Single(0x7E0, false)},
		SendRate: broker.Rate{PerSecond: 100, Burst: 10},
		FD:       true, ErrorFrames: true,
	}
	if body.Class != "can" || body.CAN == nil || body.CAN.String() != want.String() || body.Native {
		t.Errorf("body grant = %+v %v\nwant %v", body, body.CAN, want)
	}
	if body.BusRange.Start.Line != 14 || body.BusRange.Start.Column != 22 || body.DeclRange.Start.Line != 13 {
		t.Errorf("body ranges: bus %s, block %s", body.BusRange, body.DeclRange)
	}
	if err := body.CAN.Validate(); err != nil {
		t.Errorf("decoded grant does not validate: %v", err)
	}

	// Filters from a variable, any ID, native.
	diag := grantOf(t, pb, "gateway", "diag")
	if diag.CAN.Device != "can1" || diag.CAN.Receive.String() != "0x7DF, 0x7E0-0x7E7" ||
		diag.CAN.Send.String() != "*" || !diag.Native || !diag.CAN.SendRate.Unlimited() || diag.CAN.FD {
		t.Errorf("diag grant = %+v %v", diag, diag.CAN)
	}
	// Absent lists are empty: the grant receives (or sends) nothing.
	all := grantOf(t, pb, "logger", "all")
	if len(all.CAN.Send) != 0 || !all.CAN.Receive.Match(0x1ABCDEF, true) || all.CAN.Receive.Match(0x1, false) == false {
		t.Errorf("all grant = %v", all.CAN)
	}
	beacon := grantOf(t, pb, "logger", "beacon")
	if beacon.CAN.SendRate != (broker.Rate{PerSecond: 0.5}) || len(beacon.CAN.Receive) != 0 ||
		!beacon.CAN.Send.Match(0x18FF0042, true) || beacon.CAN.Send.Match(0x18FF0100, true) {
		t.Errorf("beacon grant = %v", beacon.CAN)
	}
}

// TestCANGrantProblemsAllReported checks that every problem of every grant
// is reported at once, each where it is written and with a fix.
func TestCANGrantProblemsAllReported(t *testing.T) {
	src := `stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    can "body" {
      receive    = ["0x100", "0x800-0x7FF", "*", "0xZZ"]
      send       = ["0x18DAF1FF/0x1FFFFF00"]
      send_rate  = -1
      send_burst = 1.5
      fd         = "yes"
    }
    can "body" {
      bus = "can1"
    }
    can "diag" {
      bus        = "can0"
      send       = ["0x7E0"]
      send_burst = 4
    }
    can "zero" {
      bus        = "can0"
      send       = ["0x7E0"]
      send_rate  = 0
      send_burst = 4
    }
  }
}
`
	pb, diags := Parse([]byte(src), "p.hcl", nil)
	if pb != nil {
		t.Fatal("playbook accepted")
	}
	wantAt(t, diags, 4, 16, "Missing required argument")
	wantAt(t, diags, 5, 30, "Invalid CAN filter")
	wantAt(t, diags, 5, 50, "Invalid CAN filter")
	wantAt(t, diags, 6, 21, "Invalid CAN filter")
	wantAt(t, diags, 7, 20, "Invalid send_rate")
	wantAt(t, diags, 8, 20, "Invalid send_burst")
	wantAt(t, diags, 9, 20, "Incorrect attribute value type")
	wantAt(t, diags, 11, 9, "Duplicate grant")
	wantAt(t, diags, 17, 20, "send_burst without send_rate")
	wantAt(t, diags, 23, 20, "send_burst without send_rate")
	if len(diags) != 10 {
		t.Errorf("got %d diagnostics, want 10:\n%s", len(diags), render(diags, ""))
	}
	for _, d := range diags {
		if d.Severity != hcl.DiagError || d.Detail == "" {
			t.Errorf("%s: want an error with a detail", d.Error())
		}
	}
	details := map[string]string{}
	for _, d := range diags {
		details[d.Summary] += d.Detail + "\n"
	}
	for summary, want := range map[string][]string{
		"Missing required argument": {`such as bus = "can0"`},
		"Invalid CAN filter": {`receive filter "0x800-0x7FF": the range starts after it ends: write "0x7FF-0x800`,
			`receive filter "0xZZ"`, `send filter "0x18DAF1FF/0x1FFFFF00"`, `write "0x18DAF100/0x1FFFFF00"`, `"*" for every ID`},
		"Duplicate grant":              {`grant named "body" at p.hcl:4,`},
		"send_burst without send_rate": {"sets none", "send_rate = 0 means no limit"},
	} {
		for _, w := range want {
			if !strings.Contains(details[summary], w) {
				t.Errorf("%s details lack %q:\n%s", summary, w, details[summary])
			}
		}
	}
}

func TestCANGrantNothingGrantedWarns(t *testing.T) {
	pb, diags := Parse([]byte(`stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    can "idle" { bus = "can0" }
  }
}
`), "w.hcl", nil)
	if pb == nil || len(diags) != 1 || diags[0].Severity != hcl.DiagWarning {
		t.Fatalf("want a playbook and one warning, got %v:\n%s", pb != nil, render(diags, ""))
	}
	wantAt(t, diags, 4, 5, "Grant allows nothing")
	if g := grantOf(t, pb, "a", "idle"); g.CAN == nil || len(g.CAN.Receive)+len(g.CAN.Send) != 0 {
		t.Errorf("idle grant = %+v", g)
	}
}

func loadBoard(t *testing.T, path string) *board.Board {
	t.Helper()
	b, diags := board.Load(path)
	if diags.HasErrors() {
		t.Fatalf("board %s: %s", path, diags.Error())
	}
	return b
}

func TestCheckBoard(t *testing.T) {
	simPath := filepath.Join("..", "..", "board-support", "sim", "board.hcl")
	sim := loadBoard(t, simPath)
	if diags := CheckBoard(mustLoad(t, "can-grants.hcl", nil).Stack, sim); len(diags) != 0 {
		t.Fatalf("sim board refuses can-grants.hcl:\n%s", render(diags, ""))
	}

	pb, diags := Parse([]byte(`stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    can "ok" {
      bus     = "can1"
      receive = ["*"]
    }
    can "typo" {
      bus     = "can2"
      receive = ["*"]
    }
    can "plugin-id" {
      bus     = "vcan0"
      receive = ["*"]
    }
  }
  container "b" {
    images = ["berth.local/b:1"]
    can "far" {
      bus     = "powertrain"
      receive = ["*"]
    }
  }
}
`), "p.hcl", nil)
	if diags.HasErrors() {
		t.Fatalf("parse: %s", diags.Error())
	}
	diags = CheckBoard(pb.Stack, sim)
	wantAt(t, diags, 9, 17, "Unknown CAN bus")
	wantAt(t, diags, 13, 17, "Unknown CAN bus")
	wantAt(t, diags, 20, 17, "Unknown CAN bus")
	if len(diags) != 3 {
		t.Fatalf("got %d diagnostics, want 3:\n%s", len(diags), render(diags, ""))
	}
	for i, want := range [][]string{
		{`Container "a"'s CAN grant "typo" is on bus "can2"`, "board file " + simPath + ` (board "sim")`, "its CAN devices are can0, can1", `Did you mean "can0"?`},
		{`"vcan0" is the plugin's ID of device "can0"`, `did you mean "can0"?`},
		{`Container "b"'s CAN grant "far"`, "its CAN devices are can0, can1. Name one of them."},
	} {
		for _, w := range want {
			if !strings.Contains(diags[i].Detail, w) {
				t.Errorf("diagnostic %d lacks %q: %s", i, w, diags[i].Detail)
			}
		}
	}

	// A board device of another class is not a bus; a board without CAN
	// devices says so.
	other, bd := board.Parse([]byte(`board "mixed" {
  plugin "sim" {
    path = "berth-plugin-sim"
  }
  device "can1" {
    class  = "i2c"
    plugin = "sim"
  }
}
`), "mixed.hcl")
	if bd.HasErrors() {
		t.Fatalf("board: %s", bd.Error())
	}
	diags = CheckBoard(pb.Stack, other)
	if len(diags) != 4 {
		t.Fatalf("got %d diagnostics, want 4:\n%s", len(diags), render(diags, ""))
	}
	wantAt(t, diags, 5, 17, "Not a CAN bus")
	if d := diags[0].Detail; !strings.Contains(d, `declares "can1" at mixed.hcl:5,`) || !strings.Contains(d, `of class "i2c"`) {
		t.Errorf("detail = %q", d)
	}
	for _, d := range diags {
		if !strings.Contains(d.Detail, "no CAN devices at all") || !strings.Contains(d.Detail, "mixed.hcl") {
			t.Errorf("detail = %q", d.Detail)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"can0", "can0", 0}, {"can0", "can1", 1}, {"vcan0", "can0", 1}, {"can0", "", 4}, {"kitten", "sitting", 3}} {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
