package stack

import (
	"context"
	"strings"
	"testing"

	"github.com/berth-io/berth/core/api"
)

const granted = `stack "car" {
  container "gw" {
    images = ["busybox"]
    can "body" {
      bus     = "can0"
      receive = ["0x100-0x1FF"]
    }
  }
  container "plain" {
    images = ["busybox"]
  }
}
`

// TestPlanNamesChangedGrant checks that a grant that changes, appears or
// goes replaces its container and the plan names the grant, while moving a
// grant in the file changes nothing.
func TestPlanNamesChangedGrant(t *testing.T) {
	h := newHarness(t, newFakeDriver())
	if _, err := h.up(granted); err != nil {
		t.Fatal(err)
	}
	body := `    can "body" {
      bus     = "can0"
      receive = ["0x100-0x1FF"]
    }
`
	for _, c := range []struct {
		name, next, reason string
	}{
		{"receive changed", strings.Replace(granted, `["0x100-0x1FF"]`, `["0x100-0x17F"]`, 1), `grant "body" changed`},
		{"native", strings.Replace(granted, `receive = ["0x100-0x1FF"]`, "receive = [\"0x100-0x1FF\"]\n      native = true", 1), `grant "body" changed`},
		{"grant added", strings.Replace(granted, body, body+`    can "diag" {
      bus  = "can1"
      send = ["0x7E0"]
    }
`, 1), `grant "diag" changed`},
		{"grant removed", strings.Replace(granted, body, "", 1), `grant "body" changed`},
		{"moved", strings.Replace(granted, body, "\n\n"+body, 1), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			plan, err := h.m.Plan(context.Background(), api.ApplyRequest{File: "p.hcl", Source: []byte(c.next)})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]api.Action{
				"gw":    {Container: "gw", Kind: api.ActionReplace, Reason: c.reason},
				"plain": {Container: "plain", Kind: api.ActionUnchanged},
			}
			if c.reason == "" {
				want["gw"] = api.Action{Container: "gw", Kind: api.ActionUnchanged}
			}
			if len(plan.Actions) != 2 {
				t.Fatalf("plan = %+v", plan.Actions)
			}
			for _, a := range plan.Actions {
				if a != want[a.Container] {
					t.Errorf("action %+v, want %+v", a, want[a.Container])
				}
			}
		})
	}
}
