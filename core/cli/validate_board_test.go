package cli_test

import (
	"path/filepath"
	"strings"
	"testing"
)

var simBoard = filepath.Join("..", "..", "board-support", "sim", "board.hcl")

const grantPlaybook = `stack "car" {
  container "gw" {
    images = ["berth.local/gw:1"]
    can "body" {
      bus     = "%s"
      receive = ["0x100-0x1FF"]
      send    = ["0x7E0"]
    }
  }
}
`

func TestValidateBoard(t *testing.T) {
	good := writeFile(t, "good.hcl", strings.Replace(grantPlaybook, "%s", "can1", 1))
	run(t, "", "", "validate", "--board", simBoard, good).expect(t, 0, good+`: stack "car" is valid on board "sim" (1 container)`)

	bad := writeFile(t, "bad.hcl", strings.Replace(grantPlaybook, "%s", "can3", 1))
	// Without a board the bus is not checked.
	run(t, "", "", "validate", bad).expect(t, 0, `stack "car" is valid (1 container)`)

	r := run(t, "", "", "validate", "--board", simBoard, bad)
	r.expect(t, 1)
	for _, want := range []string{"Error: Unknown CAN bus", "on " + bad + " line 5", `bus     = "can3"`,
		`grant "body" is on bus "can3"`, "board file " + simBoard, "its CAN devices are can0, can1", `Did you mean "can0"?`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	r = run(t, "", "", "validate", "--json", "--board", simBoard, bad)
	r.expect(t, 1, `"board": "`+simBoard+`"`, `"valid": false`, `"summary": "Unknown CAN bus"`, `"line": 5`, `"column": 17`)
}

func TestValidateBadBoard(t *testing.T) {
	pb := writeFile(t, "good.hcl", strings.Replace(grantPlaybook, "%s", "can0", 1))
	brd := writeFile(t, "board.hcl", `board "b" {
  device "can0" {
    class  = "can"
    plugin = "missing"
  }
}
`)
	// The board's own problems are shown against the board file.
	r := run(t, "", "", "validate", "--board", brd, pb)
	r.expect(t, 1)
	if !strings.Contains(r.stderr, "on "+brd+" line 4") || !strings.Contains(r.stderr, `plugin = "missing"`) {
		t.Errorf("stderr lacks the board diagnostic with its line:\n%s", r.stderr)
	}

	r = run(t, "", "", "validate", "--board", filepath.Join(t.TempDir(), "nope.hcl"), pb)
	r.expect(t, 1)
	if !strings.HasPrefix(r.stderr, "berth: read ") || !strings.Contains(r.stderr, "check the path") {
		t.Errorf("stderr = %q", r.stderr)
	}

	r = run(t, "", "", "validate", "--help")
	r.expect(t, 0, "--board", "without it, buses are not checked")
}
