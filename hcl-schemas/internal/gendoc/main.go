// Command gendoc writes the Markdown reference of the playbook schema.
// It is run by `go generate ./hcl-schemas`.
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
	flag.Parse()
	var buf bytes.Buffer
	if err := hclschemas.WriteMarkdown(&buf, hclschemas.PlaybookDocTitle, hclschemas.PlaybookDocIntro, hclschemas.Playbook); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}
