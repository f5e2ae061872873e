package board

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

// CheckConfig decodes p's config block against schema, the config schema
// p's plugin declares (devices.Plugin.ConfigSchema), and returns the value
// to hand to the plugin's Configure. Every mistake is a diagnostic
// pointing into the board file, so the user sees the line before the
// plugin sees the config.
//
// The value is a cty object shaped by the schema: each attribute the
// schema lists, null when not set (defaults are the plugin's to apply);
// each nested block type as an object (null when absent) or, for a
// repeated block type, a list of objects (a tuple when the elements'
// types differ), the block's labels as string attributes named by the
// schema's label names. A nil schema means the plugin takes no config:
// the result is cty.NilVal, and a config block with anything in it is an
// error. On errors the value is cty.NilVal.
func CheckConfig(p *Plugin, schema *hclschemas.Body) (cty.Value, hcl.Diagnostics) {
	if schema == nil {
		if p.Config != nil && !emptyBody(p.Config) {
			return cty.NilVal, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Plugin takes no config",
				Detail:   fmt.Sprintf("Plugin %q declares no config schema, so its config block must be empty; remove the config block.", p.Name),
				Subject:  p.ConfigRange.Ptr(),
			}}
		}
		return cty.NilVal, nil
	}
	body := p.Config
	if body == nil {
		// No config block: decode an empty body placed at the plugin
		// block, so a missing required attribute points there.
		body = &hclsyntax.Body{SrcRange: p.DeclRange, EndRange: p.DeclRange}
	}
	content, diags := hclschemas.Decode(body, schema, nil)
	if p.Config == nil {
		for _, d := range diags {
			d.Detail += fmt.Sprintf(" Plugin %q has no config block; add one that sets it.", p.Name)
		}
	}
	v, d := objectOf(content, schema)
	diags = append(diags, d...)
	hclschemas.SortByPlace(diags)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	return v, diags
}

// emptyBody reports whether body holds no attributes and no blocks.
func emptyBody(body hcl.Body) bool {
	if sb, ok := body.(*hclsyntax.Body); ok {
		return len(sb.Attributes) == 0 && len(sb.Blocks) == 0
	}
	attrs, diags := body.JustAttributes()
	return !diags.HasErrors() && len(attrs) == 0
}

// objectOf turns a decoded body into the cty object described on
// CheckConfig.
func objectOf(c *hclschemas.Content, spec *hclschemas.Body) (cty.Value, hcl.Diagnostics) {
	vals := map[string]cty.Value{}
	if spec.AnyAttrs {
		for name, a := range c.Attrs {
			vals[name] = a.Value
		}
		return cty.ObjectVal(vals), nil
	}
	for _, a := range spec.Attrs {
		if a.Raw {
			continue
		}
		if n := c.Attr(a.Name); n != nil {
			vals[a.Name] = n.Value
		} else {
			vals[a.Name] = cty.NullVal(a.Type)
		}
	}
	var diags hcl.Diagnostics
	for _, bs := range spec.Blocks {
		var elems []cty.Value
		for _, n := range c.BlocksOf(bs.Type) {
			content := n.Content
			if content == nil { // a Defer block: a plugin schema has no later stage
				var d hcl.Diagnostics
				content, d = hclschemas.Decode(n.Body, blockBody(bs), nil)
				diags = append(diags, d...)
			}
			v, d := objectOf(content, blockBody(bs))
			diags = append(diags, d...)
			if v == cty.NilVal {
				continue
			}
			attrs := v.AsValueMap()
			if attrs == nil {
				attrs = map[string]cty.Value{}
			}
			for i, l := range bs.Labels {
				attrs[l] = cty.StringVal(n.Labels[i])
			}
			elems = append(elems, cty.ObjectVal(attrs))
		}
		switch {
		case !bs.Repeated && len(elems) == 0:
			vals[bs.Type] = cty.NullVal(impliedType(bs))
		case !bs.Repeated:
			vals[bs.Type] = elems[0]
		case len(elems) == 0:
			vals[bs.Type] = cty.ListValEmpty(impliedType(bs))
		case sameType(elems):
			vals[bs.Type] = cty.ListVal(elems)
		default:
			vals[bs.Type] = cty.TupleVal(elems)
		}
	}
	return cty.ObjectVal(vals), diags
}

func blockBody(bs *hclschemas.Block) *hclschemas.Body {
	if bs.Body == nil {
		return &hclschemas.Body{}
	}
	return bs.Body
}

// impliedType is the object type of one block of type bs, as objectOf
// builds it (attributes of dynamic type stay dynamic).
func impliedType(bs *hclschemas.Block) cty.Type {
	body := blockBody(bs)
	if body.AnyAttrs {
		return cty.DynamicPseudoType
	}
	attrs := map[string]cty.Type{}
	for _, a := range body.Attrs {
		if !a.Raw {
			attrs[a.Name] = a.Type
		}
	}
	for _, nb := range body.Blocks {
		if nb.Repeated {
			attrs[nb.Type] = cty.List(impliedType(nb))
		} else {
			attrs[nb.Type] = impliedType(nb)
		}
	}
	for _, l := range bs.Labels {
		attrs[l] = cty.String
	}
	return cty.Object(attrs)
}

func sameType(vals []cty.Value) bool {
	for _, v := range vals[1:] {
		if !v.Type().Equals(vals[0].Type()) {
			return false
		}
	}
	return true
}
