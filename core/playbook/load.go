package playbook

import (
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

// Load reads and checks the playbook file at path. vars are -var overrides:
// variable name to the value as typed on the command line. It returns the
// playbook, or nil when diags has errors; diags may hold warnings either way.
func Load(path string, vars map[string]string) (*Playbook, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read playbook",
			Detail:   fmt.Sprintf("Reading %s failed: %v; check the path and its permissions.", path, err),
		}}
	}
	return Parse(src, path, vars)
}

// Parse is Load on bytes already read; filename is used in diagnostics and
// kept in Playbook.File. The returned Playbook keeps src in Source.
//
// Evaluation is staged: variables first (their defaults may only call
// functions), then locals in dependency order, then the stack with `var`
// and `local` in scope.
func Parse(src []byte, filename string, vars map[string]string) (*Playbook, hcl.Diagnostics) {
	pb, diags := parse(src, filename, vars)
	hclschemas.SortByPlace(diags)
	if diags.HasErrors() {
		return nil, diags
	}
	return pb, diags
}

// parse is Parse without dropping the result on errors: the playbook holds
// whatever could be decoded (nil without a stack or on a syntax error).
func parse(src []byte, filename string, vars map[string]string) (*Playbook, hcl.Diagnostics) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	funcs := functions()
	top, d := hclschemas.Decode(file.Body, hclschemas.Playbook, &hcl.EvalContext{Functions: funcs})
	diags = append(diags, d...)

	varVals, d := decodeVariables(top.BlocksOf("variable"), vars, funcs)
	diags = append(diags, d...)
	varObj := cty.ObjectVal(varVals)
	localVals, d := decodeLocals(top.BlocksOf("locals"), varObj, funcs)
	diags = append(diags, d...)
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": varObj, "local": cty.ObjectVal(localVals)},
		Functions: funcs,
	}

	var stack *Stack
	if blk := top.Block("stack"); blk != nil {
		var d hcl.Diagnostics
		stack, d = decodeStack(blk, ctx)
		diags = append(diags, d...)
	}
	if stack == nil {
		return nil, diags
	}
	return &Playbook{File: filename, Source: src, Stack: stack}, diags
}
