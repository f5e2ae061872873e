package hclschemas

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

var testSpec = &Body{
	Attrs: []*Attr{
		{Name: "name", Type: cty.String, Required: true},
		{Name: "count", Type: cty.Number},
		{Name: "tags", Type: cty.List(cty.String)},
		{Name: "kind", Type: cty.String, Raw: true},
	},
	Blocks: []*Block{
		{Type: "inner", Body: &Body{Attrs: []*Attr{{Name: "on", Type: cty.Bool}}}},
		{Type: "item", Labels: []string{"id"}, Repeated: true, Body: &Body{}},
		{Type: "later", Defer: true, Body: &Body{AnyAttrs: true}},
		{Type: "must", Required: true, Body: &Body{}},
	},
}

func parse(t *testing.T, src string) hcl.Body {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "t.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse: %s", diags)
	}
	return f.Body
}

func TestDecodeGood(t *testing.T) {
	body := parse(t, `
name  = "x"
count = "3"
tags  = ["a", 1]
kind  = list(string)
inner { on = "true" }
item "a" {}
item "b" {}
later { anything = nope.at.all }
must {}
`)
	c, diags := Decode(body, testSpec, nil)
	if diags.HasErrors() {
		t.Fatalf("diags: %s", diags)
	}
	if got := c.Attr("name").Value.AsString(); got != "x" {
		t.Errorf("name = %q", got)
	}
	if !c.Attr("count").Value.Equals(cty.NumberIntVal(3)).True() {
		t.Errorf("count = %#v, want converted number 3", c.Attr("count").Value)
	}
	if got := c.Attr("tags").Value; !got.Equals(cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("1")})).True() {
		t.Errorf("tags = %#v", got)
	}
	if k := c.Attr("kind"); k.Value != cty.NilVal || k.Expr == nil {
		t.Errorf("raw attribute: value %#v expr %v; want NilVal and an expression", k.Value, k.Expr)
	}
	if on := c.Block("inner").Content.Attr("on").Value; on != cty.True {
		t.Errorf("inner.on = %#v", on)
	}
	items := c.BlocksOf("item")
	if len(items) != 2 || items[0].Labels[0] != "a" || items[1].Labels[0] != "b" {
		t.Fatalf("items = %+v", items)
	}
	if r := items[1].LabelRanges[0]; r.Start.Line != 8 || r.Start.Column != 6 {
		t.Errorf("label range = %s, want 8:6", r)
	}
	if l := c.Block("later"); l.Content != nil || l.Body == nil {
		t.Errorf("deferred block: content %v body %v; want nil content and a raw body", l.Content, l.Body)
	}
}

func TestDecodeErrors(t *testing.T) {
	body := parse(t, `
count = "many"
tags  = "notalist"
inner {}
inner {}
item {}
bogus = 1
later {}
`)
	_, diags := Decode(body, testSpec, nil)
	want := []struct {
		line, col int
		summary   string
	}{
		{2, 9, "Incorrect attribute value type"},
		{3, 9, "Incorrect attribute value type"},
		{5, 1, "Duplicate inner block"},
		{6, 6, "Missing id for item"},
		{7, 1, "Unsupported argument"},
		{1, 1, "Missing required argument"},
		{1, 1, "Missing must block"},
	}
	for _, w := range want {
		found := false
		for _, d := range diags {
			if d.Subject != nil && d.Subject.Start.Line == w.line && d.Subject.Start.Column == w.col &&
				strings.Contains(d.Summary, w.summary) {
				found = true
			}
		}
		if !found {
			t.Errorf("no diagnostic %q at %d:%d; got:\n%s", w.summary, w.line, w.col, dump(diags))
		}
	}
	for _, d := range diags {
		if d.Subject == nil || d.Subject.Filename != "t.hcl" {
			t.Errorf("diagnostic without a file range: %s", d)
		}
	}
}

func TestDecodeNullRequired(t *testing.T) {
	_, diags := Decode(parse(t, "name = null\nmust {}\n"), testSpec, nil)
	if len(diags) != 1 || diags[0].Summary != "Missing required argument" || diags[0].Subject.Start.Line != 1 {
		t.Fatalf("diags = %s; want one Missing required argument on line 1", diags)
	}
}

func TestCheckReferences(t *testing.T) {
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		"var": cty.ObjectVal(map[string]cty.Value{"known": cty.StringVal("v")}),
	}}
	tests := []struct {
		src, summary, detail string
	}{
		{`name = var.known`, "", ""},
		{`name = var.nope`, "Reference to undeclared name", "var.nope is not declared (declared: known)"},
		{`name = other.x`, "Unknown variable", "references start with one of: var"},
	}
	for _, tt := range tests {
		_, diags := Decode(parse(t, tt.src+"\nmust {}\n"), testSpec, ctx)
		if tt.summary == "" {
			if diags.HasErrors() {
				t.Errorf("%s: unexpected %s", tt.src, diags)
			}
			continue
		}
		if len(diags) != 1 || diags[0].Summary != tt.summary || !strings.Contains(diags[0].Detail, tt.detail) {
			t.Errorf("%s: diags = %s; want exactly one %q containing %q", tt.src, diags, tt.summary, tt.detail)
			continue
		}
		if diags[0].Subject.Start.Column != 8 {
			t.Errorf("%s: subject %s, want column 8", tt.src, diags[0].Subject)
		}
	}
}

func dump(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		b.WriteString(d.Error() + "\n")
	}
	return b.String()
}
