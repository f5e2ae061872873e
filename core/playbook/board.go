package playbook

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/berth-io/berth/core/board"
	"github.com/berth-io/berth/devices"
	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

// CheckBoard checks st's grants against board b: each CAN grant's bus must
// name a device of class "can" in b. Each problem is an error at the
// grant's bus attribute naming b's file and its CAN devices. Parse checks
// everything about a grant that does not depend on the board.
func CheckBoard(st *Stack, b *board.Board) hcl.Diagnostics {
	var diags hcl.Diagnostics
	cans := canDevices(b)
	for _, c := range st.Containers {
		for _, g := range c.Grants {
			if g.CAN == nil {
				continue
			}
			bus := g.CAN.Device
			dev := b.Device(bus)
			if dev != nil && dev.Class == devices.ClassCAN {
				continue
			}
			where := fmt.Sprintf("Container %q's CAN grant %q is on bus %q, but the board file %s (board %q)", c.Name, g.Name, bus, b.File, b.Name)
			summary, detail := "Unknown CAN bus", where+" has no such device"
			if dev != nil {
				summary = "Not a CAN bus"
				detail = fmt.Sprintf("%s declares %q at %s as a device of class %q", where, bus, dev.DeclRange, dev.Class)
			}
			switch {
			case len(cans) == 0:
				detail += "; it has no CAN devices at all, so use the board file of an ECU with CAN buses, or remove the grant."
			default:
				detail += fmt.Sprintf("; its CAN devices are %s.%s", strings.Join(deviceNames(cans), ", "), suggestBus(bus, cans))
			}
			r := g.BusRange
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &r})
		}
	}
	return diags
}

func canDevices(b *board.Board) []*board.Device {
	var out []*board.Device
	for _, d := range b.Devices {
		if d.Class == devices.ClassCAN {
			out = append(out, d)
		}
	}
	return out
}

func deviceNames(ds []*board.Device) []string {
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.Name
	}
	return names
}

// suggestBus returns a " Did you mean ...?" sentence naming the CAN device
// bus most likely stands for, or "" when none is close: the device whose
// plugin device ID bus is (grants name the board's device, not the
// plugin's), else the nearest name by edit distance.
func suggestBus(bus string, cans []*board.Device) string {
	for _, d := range cans {
		if d.ID == bus && d.Name != bus {
			return fmt.Sprintf(" %q is the plugin's ID of device %q; grants name the board device: did you mean %q?", bus, d.Name, d.Name)
		}
	}
	want := hclschemas.SuggestName(strings.TrimSpace(bus), bus)
	best, bestDist := "", 0
	for _, d := range cans {
		dist := editDistance(want, d.Name)
		if dist <= max(1, len(d.Name)/3) && (best == "" || dist < bestDist) {
			best, bestDist = d.Name, dist
		}
	}
	if best == "" {
		return " Name one of them."
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
