package hclschemas

//go:generate go run ./internal/gendoc -out playbook.md
//go:generate go run ./internal/gendoc -schema board -out board.md

// PlaybookDocTitle and PlaybookDocIntro head the generated playbook.md.
const (
	PlaybookDocTitle = "Playbook reference"
	PlaybookDocIntro = "A playbook is an HCL file with `variable` blocks, `locals` blocks and exactly one `stack` block. " +
		"Names of stacks, containers, volumes and networks match `^[a-z0-9][a-z0-9_.-]{0,62}$` and are unique within their kind. " +
		"Sizes are written `64MiB`, `1.5GiB`, `64MB`, `64m` (Docker's units are binary) or as plain bytes; durations as `500ms`, `1s`, `2m`.\n"
)
