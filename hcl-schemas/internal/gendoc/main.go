// Command gendoc writes the Markdown reference of one of berth's schemas
// (the playbook or the board file). It is run by `go generate ./hcl-schemas`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

func main() {
	out := flag.String("out", "playbook.md", "file to write")
	schema := flag.String("schema", "playbook", "schema to document: playbook or board")
	flag.Parse()
	title, intro, body := hclschemas.PlaybookDocTitle, hclschemas.PlaybookDocIntro, hclschemas.Playbook
	switch *schema {
	case "playbook":
	case "board":
		title, intro, body = hclschemas.BoardDocTitle, hclschemas.BoardDocIntro, hclschemas.Board
	default:
		fmt.Fprintf(os.Stderr, "gendoc: unknown schema %q (want playbook or board)\n", *schema)
		os.Exit(2)
	}
	var buf bytes.Buffer
	if err := hclschemas.WriteMarkdown(&buf, title, intro, body); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}
