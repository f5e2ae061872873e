package board

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/berth-io/berth/devices"
)

const (
	boardSupportDir = "../../board-support"
	badBoardsDir    = "../../testdata/boards/bad"
)

// TestBoardSupportBoards loads every board.hcl under board-support: the
// boards berth ships must always load cleanly, warnings included.
func TestBoardSupportBoards(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(boardSupportDir, "*", "board.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d board files under %s, want at least sim and qemu-x86_64", len(files), boardSupportDir)
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			b, diags := Load(f)
			if len(diags) > 0 {
				t.Fatalf("unexpected diagnostics:\n%s", render(diags))
			}
			if b.Name != filepath.Base(filepath.Dir(f)) {
				t.Errorf("board name %q, want the folder name %q", b.Name, filepath.Base(filepath.Dir(f)))
			}
			if len(b.Devices) == 0 || len(b.Plugins) == 0 || b.Description == "" {
				t.Fatalf("incomplete board: %+v", b)
			}
			for _, d := range b.Devices {
				if b.Plugin(d.Plugin) == nil {
					t.Errorf("device %s names missing plugin %s", d.Name, d.Plugin)
				}
			}
		})
	}
}

func TestSimBoard(t *testing.T) {
	b, diags := Load(filepath.Join(boardSupportDir, "sim", "board.hcl"))
	if diags.HasErrors() {
		t.Fatal(render(diags))
	}
	for _, want := range []struct{ name, id string }{{"can0", "vcan0"}, {"can1", "vcan1"}} {
		d := b.Device(want.name)
		if d == nil || d.Class != devices.ClassCAN || d.Plugin != "vcan" || d.ID != want.id {
			t.Errorf("device %s = %+v, want a CAN device of plugin vcan with ID %s", want.name, d, want.id)
		}
	}
	if p := b.Plugin("vcan"); p == nil || p.Config == nil {
		t.Fatalf("plugin vcan = %+v, want one with a config block", p)
	}
}

// wantRE reads the first line of a bad board: `# want: LINE:COL SUMMARY`.
var wantRE = regexp.MustCompile(`^# want: (\d+):(\d+) (.+)$`)

// TestBadBoards checks that each file under testdata/boards/bad is refused
// with the diagnostic its first line announces, at that line and column,
// with a detail that says how to fix it.
func TestBadBoards(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(badBoardsDir, "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no boards in %s", badBoardsDir)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(src), "\n")
			m := wantRE.FindStringSubmatch(first)
			if m == nil {
				t.Fatalf("first line %q is not `# want: LINE:COL SUMMARY`", first)
			}
			line, _ := strconv.Atoi(m[1])
			col, _ := strconv.Atoi(m[2])
			b, diags := Parse(src, f)
			if !diags.HasErrors() || b != nil {
				t.Fatalf("board accepted; want %s", first)
			}
			for _, d := range diags {
				if d.Severity == hcl.DiagError && d.Subject != nil && d.Subject.Filename == f &&
					d.Subject.Start.Line == line && d.Subject.Start.Column == col && strings.Contains(d.Summary, m[3]) {
					if d.Detail == "" {
						t.Errorf("diagnostic %q has no detail saying how to fix it", d.Summary)
					}
					return
				}
			}
			t.Fatalf("no %q diagnostic at %d:%d; got:\n%s", m[3], line, col, render(diags))
		})
	}
}

func TestAllProblemsReported(t *testing.T) {
	src := `board "b" {
  plugin "vcan" {
    path   = "berth-plugin-vcan"
    sha256 = "xyz"
  }
  device "can0" {
    class  = "flexray"
    plugin = "nope"
  }
}
`
	_, diags := Parse([]byte(src), "b.hcl")
	wantAt(t, diags, 4, 14, "Invalid sha256")
	wantAt(t, diags, 7, 14, "Unknown device class")
	wantAt(t, diags, 8, 14, "Unknown plugin")
	if len(diags) != 3 {
		t.Errorf("got %d diagnostics, want 3:\n%s", len(diags), render(diags))
	}
	for i := 1; i < len(diags); i++ {
		if diags[i-1].Subject.Start.Byte > diags[i].Subject.Start.Byte {
			t.Fatalf("diagnostics out of file order:\n%s", render(diags))
		}
	}
	// The unknown plugin's detail names what is declared.
	for _, d := range diags {
		if d.Summary == "Unknown plugin" && !strings.Contains(d.Detail, `declared: "vcan"`) {
			t.Errorf("detail %q does not list the declared plugins", d.Detail)
		}
	}
}

func TestDefaultsAndWarnings(t *testing.T) {
	src := `board "b" {
  plugin "loop" {
    path   = "./plugins/loopback"
    sha256 = "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"
  }
  plugin "spare" {
    path = "berth-plugin-spare"
  }
  device "loop0" {
    class  = "can"
    plugin = "loop"
  }
}
`
	b, diags := Parse([]byte(src), "/etc/berth/board.hcl")
	if diags.HasErrors() {
		t.Fatal(render(diags))
	}
	wantAt(t, diags, 6, 3, "Unused plugin")
	if len(diags) != 1 || diags[0].Severity != hcl.DiagWarning {
		t.Errorf("want exactly one warning, got:\n%s", render(diags))
	}
	d := b.Device("loop0")
	if d.ID != "loop0" {
		t.Errorf("device ID %q, want the device name when id is unset", d.ID)
	}
	p := b.Plugin("loop")
	if p.SHA256 != strings.ToLower(p.SHA256) || len(p.SHA256) != 64 {
		t.Errorf("sha256 %q not kept as lower-case hex", p.SHA256)
	}
	if p.Config != nil || p.ConfigRange != p.DeclRange {
		t.Errorf("plugin without config: Config %v, ConfigRange %v, want nil and the block header", p.Config, p.ConfigRange)
	}
	if b.Dir != "/etc/berth" || b.File != "/etc/berth/board.hcl" {
		t.Errorf("File %q Dir %q", b.File, b.Dir)
	}
	if got := b.DevicesOf("loop"); len(got) != 1 || got[0] != d {
		t.Errorf("DevicesOf(loop) = %v", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	b, diags := Load(filepath.Join(t.TempDir(), "nope.hcl"))
	if b != nil || !diags.HasErrors() || !strings.Contains(diags[0].Detail, "nope.hcl") {
		t.Fatalf("Load of a missing file: %v, %s", b, render(diags))
	}
}

func wantAt(t *testing.T, diags hcl.Diagnostics, line, col int, summary string) {
	t.Helper()
	for _, d := range diags {
		if d.Subject != nil && d.Subject.Start.Line == line && d.Subject.Start.Column == col && strings.Contains(d.Summary, summary) {
			return
		}
	}
	t.Errorf("no %q at %d:%d in:\n%s", summary, line, col, render(diags))
}

func render(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		fmt.Fprintf(&b, "  %s\n", d.Error())
	}
	return b.String()
}
