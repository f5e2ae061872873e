package hclschemas

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestBoardMarkdownFresh fails when board.md does not match the schema.
func TestBoardMarkdownFresh(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, BoardDocTitle, BoardDocIntro, Board); err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("board.md")
	if err != nil {
		t.Fatalf("read board.md: %v (run `go generate ./hcl-schemas`)", err)
	}
	if !bytes.Equal(committed, buf.Bytes()) {
		t.Fatal("hcl-schemas/board.md is stale: run `go generate ./hcl-schemas` and commit the result")
	}
	for _, want := range []string{"## `board`", "### `board > plugin`", "#### `board > plugin > config`", "| `path` | string | yes |"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("reference lacks %q", want)
		}
	}
}
