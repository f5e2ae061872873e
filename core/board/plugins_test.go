package board_test

import (
	"path/filepath"
	"testing"

	"github.com/berth-io/berth/core/board"
	"github.com/berth-io/berth/plugins/socketcan"
	"github.com/berth-io/berth/plugins/vcan"
)

// TestSimBoardMatchesVCAN checks the sim board's vcan config against the
// schema the vcan plugin declares, and that the plugin accepts the result
// and serves the devices the board names: the board and the plugin are
// written by different hands and must not drift.
func TestSimBoardMatchesVCAN(t *testing.T) {
	b, diags := board.Load(filepath.Join("..", "..", "board-support", "sim", "board.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	v, diags := board.CheckConfig(b.Plugin("vcan"), vcan.Schema)
	if diags.HasErrors() {
		t.Fatalf("sim board's vcan config does not match vcan.Schema: %s", diags.Error())
	}
	cfg, err := vcan.ParseConfig(v)
	if err != nil {
		t.Fatalf("vcan refuses the sim board's config: %v", err)
	}
	for _, d := range b.DevicesOf("vcan") {
		if _, ok := cfg.Buses[d.ID]; !ok {
			t.Errorf("device %s names bus %q, which the vcan config does not serve (%v)", d.Name, d.ID, cfg.Buses)
		}
	}
}

// TestQEMUBoardMatchesSocketCAN does the same for the qemu-x86_64 board
// and the socketcan plugin: its can0 is the kernel interface vcan0.
func TestQEMUBoardMatchesSocketCAN(t *testing.T) {
	b, diags := board.Load(filepath.Join("..", "..", "board-support", "qemu-x86_64", "board.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	v, diags := board.CheckConfig(b.Plugin("socketcan"), socketcan.Schema)
	if diags.HasErrors() {
		t.Fatalf("qemu-x86_64 board's socketcan config does not match socketcan.Schema: %s", diags.Error())
	}
	devs, err := socketcan.ParseConfig(v)
	if err != nil {
		t.Fatalf("socketcan refuses the qemu-x86_64 board's config: %v", err)
	}
	iface := map[string]string{}
	for _, d := range devs {
		iface[d.ID] = d.Interface
	}
	if got := iface[b.Device("can0").ID]; got != "vcan0" {
		t.Errorf("device can0 is interface %q, want vcan0 (config devices: %v)", got, iface)
	}
}
