package playbook

import (
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/hashicorp/hcl/v2"

	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

// decoder turns decoded schema nodes into model values, collecting
// diagnostics. Its getters return the given default when the attribute is
// absent: absent means either unset or already reported by the schema
// decoder, so they never report a missing attribute themselves.
type decoder struct {
	diags hcl.Diagnostics
}

func (d *decoder) errorf(rng hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

func (d *decoder) str(c *hclschemas.Content, name, def string) (string, *hclschemas.AttrNode) {
	a := c.Attr(name)
	if a == nil {
		return def, nil
	}
	return a.Value.AsString(), a
}

func (d *decoder) boolean(c *hclschemas.Content, name string, def bool) bool {
	a := c.Attr(name)
	if a == nil {
		return def
	}
	return a.Value.True()
}

// elemRanges returns the range of each element of a list attribute: the
// element expressions when written as a literal list, else the whole
// expression for each.
func elemRanges(a *hclschemas.AttrNode, n int) []hcl.Range {
	out := make([]hcl.Range, n)
	exprs, diags := hcl.ExprList(a.Expr)
	for i := range out {
		if !diags.HasErrors() && len(exprs) == n {
			out[i] = exprs[i].Range()
		} else {
			out[i] = a.Range
		}
	}
	return out
}

// strList returns a list(string) attribute (nil when absent) and the range
// of each element. Null elements are reported and dropped.
func (d *decoder) strList(c *hclschemas.Content, name string) ([]string, []hcl.Range, *hclschemas.AttrNode) {
	a := c.Attr(name)
	if a == nil {
		return nil, nil, nil
	}
	elems := a.Value.AsValueSlice()
	ranges := elemRanges(a, len(elems))
	out := make([]string, 0, len(elems))
	var outRanges []hcl.Range
	for i, e := range elems {
		if e.IsNull() {
			d.errorf(ranges[i], "Null list element", "Element %d of %s is null; remove it or give it a value.", i, name)
			continue
		}
		out = append(out, e.AsString())
		outRanges = append(outRanges, ranges[i])
	}
	return out, outRanges, a
}

func (d *decoder) strMap(c *hclschemas.Content, name string) (map[string]string, *hclschemas.AttrNode) {
	a := c.Attr(name)
	if a == nil {
		return nil, nil
	}
	out := map[string]string{}
	for k, v := range a.Value.AsValueMap() {
		if v.IsNull() {
			d.errorf(a.Range, "Null map value", "The value of %q in %s is null; remove it or give it a value.", k, name)
			continue
		}
		out[k] = v.AsString()
	}
	return out, a
}

// integer returns a whole-number attribute, reporting fractions and values
// below min.
func (d *decoder) integer(c *hclschemas.Content, name string, min, def int64) int64 {
	a := c.Attr(name)
	if a == nil {
		return def
	}
	bf := a.Value.AsBigFloat()
	i, acc := bf.Int64()
	if !bf.IsInt() || acc != big.Exact || i > math.MaxInt32 {
		d.errorf(a.Range, "Invalid "+name, "%s must be a whole number no larger than %d, such as 3.", name, math.MaxInt32)
		return def
	}
	if i < min {
		d.errorf(a.Range, "Invalid "+name, "%s must be at least %d.", name, min)
		return def
	}
	return i
}

func (d *decoder) number(c *hclschemas.Content, name string) float64 {
	a := c.Attr(name)
	if a == nil {
		return 0
	}
	f, _ := a.Value.AsBigFloat().Float64()
	if f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		d.errorf(a.Range, "Invalid "+name, "%s must be a positive number, such as 0.5.", name)
		return 0
	}
	return f
}

func (d *decoder) duration(c *hclschemas.Content, name string, def time.Duration) time.Duration {
	a := c.Attr(name)
	if a == nil {
		return def
	}
	v, err := ParseDuration(a.Value.AsString())
	if err != nil {
		d.errorf(a.Range, "Invalid duration", "%s: %v.", name, err)
		return def
	}
	return v
}

func (d *decoder) size(c *hclschemas.Content, name string) (int64, *hclschemas.AttrNode) {
	a := c.Attr(name)
	if a == nil {
		return 0, nil
	}
	v, err := ParseSize(a.Value.AsString())
	if err != nil {
		d.errorf(a.Range, "Invalid size", "%s: %v; write a size such as 64MiB, 1.5GiB, 64MB, 64m or a number of bytes.", name, err)
		return 0, a
	}
	return v, a
}

// enum returns a string attribute that must be one of allowed.
func (d *decoder) enum(c *hclschemas.Content, name, def string, summary string, allowed ...string) string {
	v, a := d.str(c, name, def)
	if a == nil {
		return v
	}
	for _, x := range allowed {
		if v == x {
			return v
		}
	}
	d.errorf(a.Range, summary, "%s is %q; it must be one of %s.", name, v, quoteList(allowed))
	return def
}

func quoteList(s []string) string {
	out := ""
	for i, x := range s {
		switch {
		case i == 0:
		case i == len(s)-1:
			out += " or "
		default:
			out += ", "
		}
		out += fmt.Sprintf("%q", x)
	}
	return out
}
