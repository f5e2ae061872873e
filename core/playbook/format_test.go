package playbook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	messy := "stack \"s\" {\ncontainer \"a\" {\nimages=[\"berth.local/a:1\"]\n    read_only    =   false\n}\n}\n"
	want := "stack \"s\" {\n  container \"a\" {\n    images    = [\"berth.local/a:1\"]\n    read_only = false\n  }\n}\n"
	got, diags := Format([]byte(messy), "m.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if string(got) != want {
		t.Errorf("Format:\n%s\nwant:\n%s", got, want)
	}

	// Idempotent on every good playbook, and formatting keeps the meaning.
	for _, f := range playbookFiles(t, "good") {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		once, diags := Format(src, f)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", f, diags)
		}
		twice, _ := Format(once, f)
		if string(once) != string(twice) {
			t.Errorf("%s: Format is not idempotent", filepath.Base(f))
		}
		if _, diags := Parse(once, f, nil); diags.HasErrors() {
			t.Errorf("%s: formatted playbook no longer parses: %s", filepath.Base(f), diags)
		}
	}
}

func TestFormatRefusesBrokenInput(t *testing.T) {
	out, diags := Format([]byte("stack \"s\" {\n  container \"a\" {\n"), "broken.hcl")
	if out != nil || !diags.HasErrors() {
		t.Fatalf("Format of broken input = %q, %v; want nil and errors", out, diags)
	}
	if d := diags[0]; d.Subject == nil || d.Subject.Filename != "broken.hcl" || !strings.Contains(d.Summary, "Unclosed") {
		t.Errorf("diagnostic = %v", d)
	}
}
