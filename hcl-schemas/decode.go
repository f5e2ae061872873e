package hclschemas

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Content is a decoded body: its attributes and blocks, with ranges.
type Content struct {
	// Attrs holds the attributes that were set, by name. An attribute that
	// failed to evaluate or convert (already reported), that is null, or
	// whose value is not wholly known (it depends on something that already
	// failed) is absent.
	Attrs map[string]*AttrNode
	// Blocks are the nested blocks in source order.
	Blocks []*BlockNode
	// MissingItemRange is where to point a diagnostic about something
	// missing from the body.
	MissingItemRange hcl.Range
}

// AttrNode is one decoded attribute.
type AttrNode struct {
	Name string
	// Value is the evaluated value converted to the spec's type; cty.NilVal
	// for Raw attributes.
	Value cty.Value
	// Expr is the attribute's expression, for per-element ranges
	// (hcl.ExprList, hcl.ExprMap) and for Raw attributes.
	Expr hcl.Expression
	// Range is the range of the expression; NameRange that of the name.
	Range     hcl.Range
	NameRange hcl.Range
}

// BlockNode is one decoded block.
type BlockNode struct {
	Type        string
	Labels      []string
	DefRange    hcl.Range
	TypeRange   hcl.Range
	LabelRanges []hcl.Range
	// Body is the raw body, always set. For a Defer block it is the only
	// way to reach the contents.
	Body hcl.Body
	// Content is the decoded body; nil for Defer blocks.
	Content *Content
}

// Attr returns the attribute node with the given name, or nil.
func (c *Content) Attr(name string) *AttrNode {
	if c == nil {
		return nil
	}
	return c.Attrs[name]
}

// BlocksOf returns the blocks of the given type in source order.
func (c *Content) BlocksOf(typ string) []*BlockNode {
	if c == nil {
		return nil
	}
	var out []*BlockNode
	for _, b := range c.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

// Block returns the first block of the given type, or nil.
func (c *Content) Block(typ string) *BlockNode {
	if bs := c.BlocksOf(typ); len(bs) > 0 {
		return bs[0]
	}
	return nil
}

// Decode checks body against spec and returns the decoded tree. Attribute
// expressions are evaluated in ctx (which may be nil: then no variables or
// functions are available) and converted to their spec type. Unknown
// attributes and blocks, missing required attributes and blocks, a second
// single block, type conversion failures and references to names ctx does
// not define are all reported, each with a source range; decoding goes on
// past every error so all problems are reported at once. The returned
// Content is never nil.
func Decode(body hcl.Body, spec *Body, ctx *hcl.EvalContext) (*Content, hcl.Diagnostics) {
	out := &Content{Attrs: map[string]*AttrNode{}, MissingItemRange: body.MissingItemRange()}
	if spec.AnyAttrs {
		attrs, diags := body.JustAttributes()
		for _, a := range sortedAttrs(attrs) {
			n, d := decodeAttr(a, &Attr{Name: a.Name, Type: cty.DynamicPseudoType}, ctx)
			diags = append(diags, d...)
			if n != nil {
				out.Attrs[a.Name] = n
			}
		}
		return out, diags
	}

	content, diags := body.Content(BodySchema(spec))
	if content == nil {
		return out, diags
	}
	out.MissingItemRange = content.MissingItemRange
	for _, a := range sortedAttrs(content.Attributes) {
		aspec := spec.Attr(a.Name)
		if aspec == nil { // cannot happen: Content only returns schema attributes
			continue
		}
		n, d := decodeAttr(a, aspec, ctx)
		diags = append(diags, d...)
		if n != nil {
			out.Attrs[a.Name] = n
		}
	}

	first := map[string]*hcl.Block{}
	for _, blk := range content.Blocks {
		bspec := spec.Block(blk.Type)
		if bspec == nil {
			continue
		}
		if !bspec.Repeated {
			if prev, dup := first[blk.Type]; dup {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("Duplicate %s block", blk.Type),
					Detail: fmt.Sprintf("Only one %s block is allowed here, and one is already defined at %s; merge them or remove this one.",
						blk.Type, prev.DefRange),
					Subject: blk.DefRange.Ptr(),
				})
				continue
			}
			first[blk.Type] = blk
		}
		n := &BlockNode{
			Type:        blk.Type,
			Labels:      blk.Labels,
			DefRange:    blk.DefRange,
			TypeRange:   blk.TypeRange,
			LabelRanges: blk.LabelRanges,
			Body:        blk.Body,
		}
		if !bspec.Defer && bspec.Body != nil {
			c, d := Decode(blk.Body, bspec.Body, ctx)
			diags = append(diags, d...)
			n.Content = c
		}
		out.Blocks = append(out.Blocks, n)
	}
	for _, bspec := range spec.Blocks {
		if !bspec.Required {
			continue
		}
		found := false
		for _, blk := range content.Blocks {
			found = found || blk.Type == bspec.Type
		}
		if !found {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Missing %s block", bspec.Type),
				Detail:   fmt.Sprintf("A %s block is required here; add one.", blockHeader(bspec)),
				Subject:  content.MissingItemRange.Ptr(),
			})
		}
	}
	return out, diags
}

// BodySchema returns the hcl.BodySchema for one level of spec. Required
// attributes are marked so HCL itself reports them missing.
func BodySchema(spec *Body) *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, a := range spec.Attrs {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: a.Name, Required: a.Required})
	}
	for _, b := range spec.Blocks {
		s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: b.Type, LabelNames: b.Labels})
	}
	return s
}

func decodeAttr(a *hcl.Attribute, spec *Attr, ctx *hcl.EvalContext) (*AttrNode, hcl.Diagnostics) {
	n := &AttrNode{Name: a.Name, Expr: a.Expr, Range: a.Expr.Range(), NameRange: a.NameRange}
	if spec.Raw {
		return n, nil
	}
	if diags := CheckReferences(a.Expr, ctx); diags.HasErrors() {
		return nil, diags
	}
	v, diags := a.Expr.Value(ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	if v.IsNull() {
		if spec.Required {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing required argument",
				Detail:   fmt.Sprintf("The argument %q is required and may not be null; set it to a value.", a.Name),
				Subject:  a.Expr.Range().Ptr(),
			})
		}
		return nil, diags
	}
	if !v.IsWhollyKnown() {
		return nil, diags
	}
	v, _ = v.Unmark()
	cv, err := convert.Convert(v, spec.Type)
	if err != nil {
		return nil, append(diags, &hcl.Diagnostic{
			Severity:    hcl.DiagError,
			Summary:     "Incorrect attribute value type",
			Detail:      fmt.Sprintf("Inappropriate value for attribute %q: %s; write a %s value.", a.Name, err, typeName(spec.Type)),
			Subject:     a.Expr.Range().Ptr(),
			Expression:  a.Expr,
			EvalContext: ctx,
		})
	}
	if !cv.IsWhollyKnown() {
		return nil, diags
	}
	n.Value = cv
	return n, diags
}

// CheckReferences reports every variable reference in expr that ctx cannot
// resolve: an unknown root name ("Unknown variable"), or an attribute of an
// object-valued root that the object lacks, such as `var.nope` when no
// variable "nope" is declared ("Reference to undeclared name"). Each
// diagnostic names what is declared so the fix is obvious.
func CheckReferences(expr hcl.Expression, ctx *hcl.EvalContext) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, t := range expr.Variables() {
		root := t.RootName()
		val, ok := lookupVar(ctx, root)
		if !ok {
			detail := fmt.Sprintf("There is no variable named %q and no variables may be used here; use a literal value.", root)
			if names := ctxNames(ctx); len(names) > 0 {
				detail = fmt.Sprintf("There is no variable named %q; references start with one of: %s.", root, strings.Join(names, ", "))
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unknown variable",
				Detail:   detail,
				Subject:  t[0].SourceRange().Ptr(),
			})
			continue
		}
		if len(t) < 2 || val.IsNull() || !val.IsKnown() || !val.Type().IsObjectType() {
			continue
		}
		step, isAttr := t[1].(hcl.TraverseAttr)
		if !isAttr || val.Type().HasAttribute(step.Name) {
			continue
		}
		declared := make([]string, 0, len(val.Type().AttributeTypes()))
		for name := range val.Type().AttributeTypes() {
			declared = append(declared, name)
		}
		sort.Strings(declared)
		known := "none are declared"
		if len(declared) > 0 {
			known = "declared: " + strings.Join(declared, ", ")
		}
		rng := hcl.RangeBetween(t[0].SourceRange(), step.SourceRange())
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Reference to undeclared name",
			Detail:   fmt.Sprintf("%s.%s is not declared (%s); fix the spelling or declare it.", root, step.Name, known),
			Subject:  rng.Ptr(),
		})
	}
	return diags
}

func lookupVar(ctx *hcl.EvalContext, name string) (cty.Value, bool) {
	for c := ctx; c != nil; c = c.Parent() {
		if v, ok := c.Variables[name]; ok {
			return v, true
		}
	}
	return cty.NilVal, false
}

func ctxNames(ctx *hcl.EvalContext) []string {
	seen := map[string]bool{}
	var names []string
	for c := ctx; c != nil; c = c.Parent() {
		for n := range c.Variables {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	return names
}

// sortedAttrs returns attrs in source order so diagnostics come out in a
// stable, readable order.
func sortedAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		ri, rj := out[i].Range, out[j].Range
		if ri.Filename != rj.Filename {
			return ri.Filename < rj.Filename
		}
		return ri.Start.Byte < rj.Start.Byte
	})
	return out
}

func blockHeader(b *Block) string {
	s := b.Type
	for _, l := range b.Labels {
		s += ` "<` + l + `>"`
	}
	return s
}
