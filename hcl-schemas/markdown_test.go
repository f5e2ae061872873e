package hclschemas

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestPlaybookMarkdownFresh fails when playbook.md does not match the
// schema, so the committed reference never drifts from the code.
func TestPlaybookMarkdownFresh(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, PlaybookDocTitle, PlaybookDocIntro, Playbook); err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("playbook.md")
	if err != nil {
		t.Fatalf("read playbook.md: %v (run `go generate ./hcl-schemas`)", err)
	}
	if !bytes.Equal(committed, buf.Bytes()) {
		t.Fatal("hcl-schemas/playbook.md is stale: run `go generate ./hcl-schemas` and commit the result")
	}
	for _, want := range []string{"### `stack > container`", "#### `stack > container > restart`", "| `images` | list(string) | yes |"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("reference lacks %q", want)
		}
	}
}
