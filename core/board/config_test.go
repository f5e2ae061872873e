package board

import (
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/berth-io/berth/devices"
	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

// vcanLikeSchema is a plugin schema with the shapes CheckConfig handles:
// a required attribute, optional ones, a single block and a labelled
// repeated block.
var vcanLikeSchema = &hclschemas.Body{
	Attrs: []*hclschemas.Attr{
		{Name: "group", Type: cty.String, Required: true},
		{Name: "fd", Type: cty.Bool},
		{Name: "buses", Type: cty.List(cty.String)},
	},
	Blocks: []*hclschemas.Block{
		{Type: "timing", Body: &hclschemas.Body{Attrs: []*hclschemas.Attr{{Name: "bitrate", Type: cty.Number}}}},
		{Type: "bus", Labels: []string{"name"}, Repeated: true,
			Body: &hclschemas.Body{Attrs: []*hclschemas.Attr{{Name: "loopback", Type: cty.Bool}}}},
	},
}

func boardWithConfig(t *testing.T, config string) *Plugin {
	t.Helper()
	src := `board "b" {
  plugin "p" {
    path = "berth-plugin-p"
` + config + `
  }
  device "d" {
    class  = "can"
    plugin = "p"
  }
}
`
	b, diags := Parse([]byte(src), "board.hcl")
	if diags.HasErrors() {
		t.Fatal(render(diags))
	}
	return b.Plugin("p")
}

func TestCheckConfig(t *testing.T) {
	cases := []struct {
		name   string
		config string
		schema *hclschemas.Body
		// check the value, or the one error wanted at line:col.
		check   func(t *testing.T, v cty.Value)
		errLine int
		errCol  int
		errSum  string
		errText string
	}{
		{
			name: "full",
			config: `    config {
      group = "239.64.0.1:20000"
      buses = ["vcan0", "vcan1"]
      timing { bitrate = 500000 }
      bus "vcan0" { loopback = true }
      bus "vcan1" {}
    }`,
			schema: vcanLikeSchema,
			check: func(t *testing.T, v cty.Value) {
				if got := v.GetAttr("group").AsString(); got != "239.64.0.1:20000" {
					t.Errorf("group %q", got)
				}
				if !v.GetAttr("fd").IsNull() {
					t.Errorf("unset fd is %#v, want null", v.GetAttr("fd"))
				}
				if n := v.GetAttr("buses").LengthInt(); n != 2 {
					t.Errorf("buses has %d elements", n)
				}
				br, _ := v.GetAttr("timing").GetAttr("bitrate").AsBigFloat().Int64()
				if br != 500000 {
					t.Errorf("timing.bitrate %d", br)
				}
				buses := v.GetAttr("bus").AsValueSlice()
				if len(buses) != 2 || buses[0].GetAttr("name").AsString() != "vcan0" || !buses[0].GetAttr("loopback").True() ||
					!buses[1].GetAttr("loopback").IsNull() {
					t.Errorf("bus blocks %#v", buses)
				}
				// The value crosses the wire as the plugin will get it.
				data, err := devices.MarshalConfig(v)
				if err != nil {
					t.Fatal(err)
				}
				back, err := devices.UnmarshalConfig(data)
				if err != nil || !back.RawEquals(v) {
					t.Errorf("wire round trip: %v, %#v", err, back)
				}
			},
		},
		{
			name:   "no blocks",
			config: `    config { group = "g" }`,
			schema: vcanLikeSchema,
			check: func(t *testing.T, v cty.Value) {
				if !v.GetAttr("timing").IsNull() || v.GetAttr("bus").LengthInt() != 0 {
					t.Errorf("absent blocks: timing %#v bus %#v", v.GetAttr("timing"), v.GetAttr("bus"))
				}
			},
		},
		{
			name:    "wrong type",
			config:  "    config {\n      group = \"g\"\n      fd    = \"maybe\"\n    }",
			schema:  vcanLikeSchema,
			errLine: 6, errCol: 15, errSum: "Incorrect attribute value type",
		},
		{
			name:    "unknown attribute",
			config:  "    config {\n      group   = \"g\"\n      bitrat = 1\n    }",
			schema:  vcanLikeSchema,
			errLine: 6, errCol: 7, errSum: "Unsupported argument",
		},
		{
			name:    "missing required in block",
			config:  "    config {\n      fd = true\n    }",
			schema:  vcanLikeSchema,
			errLine: 4, errCol: 12, errSum: "Missing required argument",
		},
		{
			name:    "no config block at all",
			schema:  vcanLikeSchema,
			errLine: 2, errCol: 3, errSum: "Missing required argument", errText: `Plugin "p" has no config block`,
		},
		{
			name:    "config for a plugin without schema",
			config:  `    config { group = "g" }`,
			errLine: 4, errCol: 5, errSum: "Plugin takes no config",
		},
		{
			name:   "empty config for a plugin without schema",
			config: `    config {}`,
			check: func(t *testing.T, v cty.Value) {
				if v != cty.NilVal {
					t.Errorf("value %#v, want cty.NilVal", v)
				}
			},
		},
		{
			name:   "no config, nothing required",
			schema: &hclschemas.Body{Attrs: []*hclschemas.Attr{{Name: "device", Type: cty.String}}},
			check: func(t *testing.T, v cty.Value) {
				if !v.Type().IsObjectType() || !v.GetAttr("device").IsNull() {
					t.Errorf("value %#v, want an object with a null device", v)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := boardWithConfig(t, c.config)
			v, diags := CheckConfig(p, c.schema)
			if c.check != nil {
				if diags.HasErrors() {
					t.Fatal(render(diags))
				}
				c.check(t, v)
				return
			}
			if v != cty.NilVal {
				t.Errorf("value %#v on error, want cty.NilVal", v)
			}
			wantAt(t, diags, c.errLine, c.errCol, c.errSum)
			for _, d := range diags {
				if d.Subject == nil || d.Subject.Filename != "board.hcl" {
					t.Errorf("diagnostic %q does not point into the board file", d.Error())
				}
				if c.errText != "" && !strings.Contains(d.Detail, c.errText) {
					t.Errorf("detail %q lacks %q", d.Detail, c.errText)
				}
			}
		})
	}
}
