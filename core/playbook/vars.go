package playbook

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

// functions is the set of functions playbook expressions may call: a
// modest part of the cty standard library, named as in Terraform.
func functions() map[string]function.Function {
	return map[string]function.Function{
		"abs":        stdlib.AbsoluteFunc,
		"coalesce":   stdlib.CoalesceFunc,
		"concat":     stdlib.ConcatFunc,
		"contains":   stdlib.ContainsFunc,
		"distinct":   stdlib.DistinctFunc,
		"element":    stdlib.ElementFunc,
		"flatten":    stdlib.FlattenFunc,
		"format":     stdlib.FormatFunc,
		"formatlist": stdlib.FormatListFunc,
		"join":       stdlib.JoinFunc,
		"keys":       stdlib.KeysFunc,
		"length":     stdlib.LengthFunc,
		"lookup":     stdlib.LookupFunc,
		"lower":      stdlib.LowerFunc,
		"max":        stdlib.MaxFunc,
		"merge":      stdlib.MergeFunc,
		"min":        stdlib.MinFunc,
		"replace":    stdlib.ReplaceFunc,
		"split":      stdlib.SplitFunc,
		"substr":     stdlib.SubstrFunc,
		"title":      stdlib.TitleFunc,
		"tobool":     stdlib.MakeToFunc(cty.Bool),
		"tonumber":   stdlib.MakeToFunc(cty.Number),
		"tostring":   stdlib.MakeToFunc(cty.String),
		"trimprefix": stdlib.TrimPrefixFunc,
		"trimspace":  stdlib.TrimSpaceFunc,
		"trimsuffix": stdlib.TrimSuffixFunc,
		"upper":      stdlib.UpperFunc,
		"values":     stdlib.ValuesFunc,
	}
}

// decodeVariables resolves every variable block to a value: the -var
// override converted to the declared type, else the default. A variable
// left without a value is reported and set to an unknown value, so
// expressions using it are skipped rather than reported again.
func decodeVariables(blocks []*hclschemas.BlockNode, overrides map[string]string, funcs map[string]function.Function) (map[string]cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	vals := map[string]cty.Value{}
	declared := map[string]hcl.Range{}
	for _, b := range blocks {
		name := b.Labels[0]
		if !hclsyntax.ValidIdentifier(name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid variable name",
				Detail:   fmt.Sprintf("%q is not a valid variable name: use letters, digits, '_' and '-', starting with a letter.", name),
				Subject:  b.LabelRanges[0].Ptr(),
			})
			continue
		}
		if prev, dup := declared[name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate variable",
				Detail:   fmt.Sprintf("The variable %q is already declared at %s; remove or rename one of them.", name, prev),
				Subject:  b.DefRange.Ptr(),
			})
			continue
		}
		declared[name] = b.DefRange
		vals[name] = cty.DynamicVal

		ty := cty.DynamicPseudoType
		if a := b.Content.Attr("type"); a != nil {
			t, d := typeexpr.TypeConstraint(a.Expr)
			if d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			ty = t
		}
		if raw, ok := overrides[name]; ok {
			v, d := varValue(name, raw, ty, b.DefRange, funcs)
			diags = append(diags, d...)
			if !d.HasErrors() {
				vals[name] = v
			}
			continue
		}
		def := b.Content.Attr("default")
		if def == nil {
			if a := rawAttr(b.Body, "default"); a != nil {
				// Either the default failed to evaluate (already reported)
				// or it is null, which makes null the value, as in Terraform.
				if v, d := a.Expr.Value(&hcl.EvalContext{Functions: funcs}); !d.HasErrors() && v.IsNull() {
					vals[name] = cty.NullVal(ty)
				}
				continue
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "No value for required variable",
				Detail:   fmt.Sprintf("The variable %q has no default and no value was given; set one with -var %s=VALUE or add a default.", name, name),
				Subject:  b.DefRange.Ptr(),
			})
			continue
		}
		v, err := convert.Convert(def.Value, ty)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid default value for variable",
				Detail:   fmt.Sprintf("The default of %q does not match its type %s: %s; change the default or the type.", name, typeexpr.TypeString(ty), err),
				Subject:  def.Range.Ptr(),
			})
			continue
		}
		vals[name] = v
	}

	var unknown []string
	for name := range overrides {
		if _, ok := declared[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Value for undeclared variable",
			Detail: fmt.Sprintf("A -var value was given for %q, but the playbook declares no such variable (declared: %s); fix the name or declare it with a variable block.",
				name, namesOf(declared)),
		})
	}
	return vals, diags
}

// varValue converts a -var value as typed on the command line: strings are
// taken as they are, numbers and bools are parsed, and other types (lists,
// maps) are read as HCL expressions, as Terraform does.
func varValue(name, raw string, ty cty.Type, decl hcl.Range, funcs map[string]function.Function) (cty.Value, hcl.Diagnostics) {
	var v cty.Value
	switch {
	case ty == cty.DynamicPseudoType || ty.IsPrimitiveType():
		v = cty.StringVal(raw)
	default:
		expr, diags := hclsyntax.ParseExpression([]byte(raw), fmt.Sprintf("<value for var.%s>", name), hcl.InitialPos)
		if diags.HasErrors() {
			return cty.NilVal, diags
		}
		val, diags := expr.Value(&hcl.EvalContext{Functions: funcs})
		if diags.HasErrors() {
			return cty.NilVal, diags
		}
		v = val
	}
	cv, err := convert.Convert(v, ty)
	if err == nil && !cv.IsWhollyKnown() {
		err = fmt.Errorf("value is not known")
	}
	if err != nil {
		return cty.NilVal, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail:   fmt.Sprintf("-var %s=%q: %s; give a %s value.", name, raw, err, typeexpr.TypeString(ty)),
			Subject:  decl.Ptr(),
		}}
	}
	return cv, nil
}

// rawAttr returns the named attribute of body, or nil.
func rawAttr(body hcl.Body, name string) *hcl.Attribute {
	content, _, _ := body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: name}}})
	if content == nil {
		return nil
	}
	return content.Attributes[name]
}

// decodeLocals evaluates all locals blocks in dependency order with ctx
// (which must define "var"). A local in a cycle, or whose expression
// fails, is reported and left unknown so its users are not reported again.
func decodeLocals(blocks []*hclschemas.BlockNode, vars cty.Value, funcs map[string]function.Function) (map[string]cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	attrs := map[string]*hcl.Attribute{}
	var order []string
	for _, b := range blocks {
		as, d := b.Body.JustAttributes()
		diags = append(diags, d...)
		for _, a := range sortedAttrs(as) {
			if prev, dup := attrs[a.Name]; dup {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate local value",
					Detail:   fmt.Sprintf("local.%s is already defined at %s; remove or rename one of them.", a.Name, prev.NameRange),
					Subject:  a.NameRange.Ptr(),
				})
				continue
			}
			attrs[a.Name] = a
			order = append(order, a.Name)
		}
	}

	vals := make(map[string]cty.Value, len(attrs))
	for name := range attrs {
		vals[name] = cty.DynamicVal
	}
	deps := func(name string) []string {
		var out []string
		for _, t := range attrs[name].Expr.Variables() {
			if t.RootName() != "local" || len(t) < 2 {
				continue
			}
			if step, ok := t[1].(hcl.TraverseAttr); ok {
				if _, declared := attrs[step.Name]; declared {
					out = append(out, step.Name)
				}
			}
		}
		return out
	}

	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	inCycle := map[string]bool{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		state[name] = visiting
		stack = append(stack, name)
		for _, dep := range deps(name) {
			switch state[dep] {
			case unvisited:
				visit(dep)
			case visiting:
				i := indexOf(stack, dep)
				cycle := append(append([]string(nil), stack[i:]...), dep)
				for _, n := range cycle {
					inCycle[n] = true
				}
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Cycle in local values",
					Detail: fmt.Sprintf("local.%s refer to each other, so none can be evaluated; break the cycle by replacing one reference with a value or a variable.",
						strings.Join(cycle, " -> local.")),
					Subject: attrs[cycle[0]].NameRange.Ptr(),
				})
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
		if inCycle[name] {
			return
		}
		ctx := &hcl.EvalContext{
			Variables: map[string]cty.Value{"var": vars, "local": cty.ObjectVal(vals)},
			Functions: funcs,
		}
		expr := attrs[name].Expr
		if d := hclschemas.CheckReferences(expr, ctx); d.HasErrors() {
			diags = append(diags, d...)
			return
		}
		v, d := expr.Value(ctx)
		diags = append(diags, d...)
		if !d.HasErrors() {
			v, _ = v.Unmark()
			vals[name] = v
		}
	}
	for _, name := range order {
		if state[name] == unvisited {
			visit(name)
		}
	}
	return vals, diags
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func sortedAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Range.Start.Byte < out[j].Range.Start.Byte })
	return out
}

func namesOf(m map[string]hcl.Range) string {
	if len(m) == 0 {
		return "none"
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
