package playbook

import (
	"io"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Format returns src in canonical HCL layout (as hclwrite.Format does). It
// refuses input that does not parse, returning nil and the syntax errors,
// so a broken file is never rewritten. Format is idempotent.
func Format(src []byte, filename string) ([]byte, hcl.Diagnostics) {
	if _, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos); diags.HasErrors() {
		return nil, diags
	}
	return hclwrite.Format(src), nil
}

// WriteDiagnostics prints diags as Terraform does, with a source snippet
// under each one that has a range. sources maps file names (as used in the
// diagnostics' ranges) to their bytes; a diagnostic in a file missing from
// sources is printed without a snippet. width wraps the text (0: no
// wrapping); color adds terminal colors.
func WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, sources map[string][]byte, width uint, color bool) error {
	files := make(map[string]*hcl.File, len(sources))
	for name, src := range sources {
		files[name] = &hcl.File{Bytes: src}
	}
	return hcl.NewDiagnosticTextWriter(w, files, width, color).WriteDiagnostics(diags)
}
