package playbook

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

const playbooksDir = "../../testdata/playbooks"

func playbookFiles(t testing.TB, kind string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(playbooksDir, kind, "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no playbooks in %s/%s", playbooksDir, kind)
	}
	return files
}

func TestGoodPlaybooks(t *testing.T) {
	for _, f := range playbookFiles(t, "good") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			pb, diags := Load(f, nil)
			if diags.HasErrors() {
				t.Fatalf("unexpected diagnostics:\n%s", render(diags, f))
			}
			if pb.File != f || len(pb.Source) == 0 || pb.Stack == nil || len(pb.Stack.Containers) == 0 {
				t.Fatalf("incomplete playbook: %+v", pb)
			}
		})
	}
}

// wantRE reads the first line of a bad playbook: `# want: LINE:COL SUMMARY`.
var wantRE = regexp.MustCompile(`^# want: (\d+):(\d+) (.+)$`)

// TestBadPlaybooks checks that each file under testdata/playbooks/bad is
// rejected with the diagnostic its first line announces, at that exact
// line and column.
func TestBadPlaybooks(t *testing.T) {
	for _, f := range playbookFiles(t, "bad") {
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
			pb, diags := Parse(src, f, nil)
			if !diags.HasErrors() || pb != nil {
				t.Fatalf("playbook accepted; want %s", first)
			}
			for _, d := range diags {
				if d.Severity == hcl.DiagError && d.Subject != nil && d.Subject.Start.Line == line &&
					d.Subject.Start.Column == col && strings.Contains(d.Summary, m[3]) {
					if d.Detail == "" {
						t.Errorf("diagnostic %q has no detail saying how to fix it", d.Summary)
					}
					return
				}
			}
			t.Fatalf("no %q diagnostic at %d:%d; got:\n%s", m[3], line, col, render(diags, f))
		})
	}
}

func TestAllProblemsReported(t *testing.T) {
	src := `stack "s" {
  container "a" {
    images    = ["berth.local/a:1"]
    resources { memory = "lots" }
  }
  container "b" {
    images = ["berth.local/b:1"]
    depends_on "nobody" {}
  }
}
`
	_, diags := Parse([]byte(src), "two.hcl", nil)
	wantAt(t, diags, 4, 26, "Invalid size")
	wantAt(t, diags, 8, 5, "Unknown dependency")
	if len(diags) != 2 {
		t.Errorf("got %d diagnostics, want 2:\n%s", len(diags), render(diags, "two.hcl"))
	}
	// Reported in file order, whatever order the checks found them in.
	_, diags = Parse([]byte(`stack "s" {
  container "b" {
    images = ["berth.local/b:1"]
    depends_on "nobody" {}
  }
  container "a" {
    images    = ["berth.local/a:1"]
    resources { memory = "lots" }
  }
}
`), "order.hcl", nil)
	for i := 1; i < len(diags); i++ {
		if diags[i-1].Subject.Start.Byte > diags[i].Subject.Start.Byte {
			t.Fatalf("diagnostics out of file order:\n%s", render(diags, "order.hcl"))
		}
	}
	if len(diags) != 2 {
		t.Fatalf("got %d diagnostics, want 2", len(diags))
	}
}

func TestWriteDiagnostics(t *testing.T) {
	f := filepath.Join(playbooksDir, "bad", "unknown-network.hcl")
	src, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	_, diags := Parse(src, f, nil)
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, diags, map[string][]byte{f: src}, 100, false); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"Error: Unknown network", "unknown-network.hcl line 6", `networks = ["front", "back"]`, `add a network "back" block`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func wantAt(t *testing.T, diags hcl.Diagnostics, line, col int, summary string) {
	t.Helper()
	for _, d := range diags {
		if d.Subject != nil && d.Subject.Start.Line == line && d.Subject.Start.Column == col && strings.Contains(d.Summary, summary) {
			return
		}
	}
	t.Errorf("no %q at %d:%d in:\n%s", summary, line, col, render(diags, ""))
}

func render(diags hcl.Diagnostics, _ string) string {
	var b strings.Builder
	for _, d := range diags {
		fmt.Fprintf(&b, "  %s\n", d.Error())
	}
	return b.String()
}
