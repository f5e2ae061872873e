package devices

import (
	"encoding/json"
	"fmt"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

// The wire form of a config schema: the hclschemas tree as JSON, with each
// attribute's cty type in cty's own JSON type encoding
// (`"string"`, `["list","number"]`, `["object",{...}]`).
type wireBody struct {
	Attrs    []wireAttr  `json:"attrs,omitempty"`
	Blocks   []wireBlock `json:"blocks,omitempty"`
	AnyAttrs bool        `json:"any_attrs,omitempty"`
}

type wireAttr struct {
	Name     string          `json:"name"`
	Type     json.RawMessage `json:"type"`
	Raw      bool            `json:"raw,omitempty"`
	Required bool            `json:"required,omitempty"`
	Default  string          `json:"default,omitempty"`
	Doc      string          `json:"doc,omitempty"`
}

type wireBlock struct {
	Type     string    `json:"type"`
	Labels   []string  `json:"labels,omitempty"`
	Repeated bool      `json:"repeated,omitempty"`
	Required bool      `json:"required,omitempty"`
	Defer    bool      `json:"defer,omitempty"`
	Doc      string    `json:"doc,omitempty"`
	Body     *wireBody `json:"body,omitempty"`
}

// MarshalSchema encodes a config schema for the wire. A nil schema (the
// plugin takes no config) encodes as nil.
func MarshalSchema(b *hclschemas.Body) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	w, err := toWireBody(b)
	if err != nil {
		return nil, fmt.Errorf("marshal config schema: %w", err)
	}
	return json.Marshal(w)
}

// UnmarshalSchema decodes what [MarshalSchema] encoded. Empty input gives
// a nil schema.
func UnmarshalSchema(data []byte) (*hclschemas.Body, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var w wireBody
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("unmarshal config schema: %w", err)
	}
	b, err := fromWireBody(&w)
	if err != nil {
		return nil, fmt.Errorf("unmarshal config schema: %w", err)
	}
	return b, nil
}

func toWireBody(b *hclschemas.Body) (*wireBody, error) {
	w := &wireBody{AnyAttrs: b.AnyAttrs}
	for _, a := range b.Attrs {
		ty := a.Type
		if ty == cty.NilType {
			ty = cty.DynamicPseudoType
		}
		tj, err := ctyjson.MarshalType(ty)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
		}
		w.Attrs = append(w.Attrs, wireAttr{Name: a.Name, Type: tj, Raw: a.Raw,
			Required: a.Required, Default: a.Default, Doc: a.Doc})
	}
	for _, blk := range b.Blocks {
		wb := wireBlock{Type: blk.Type, Labels: blk.Labels, Repeated: blk.Repeated,
			Required: blk.Required, Defer: blk.Defer, Doc: blk.Doc}
		if blk.Body != nil {
			body, err := toWireBody(blk.Body)
			if err != nil {
				return nil, fmt.Errorf("block %q: %w", blk.Type, err)
			}
			wb.Body = body
		}
		w.Blocks = append(w.Blocks, wb)
	}
	return w, nil
}

func fromWireBody(w *wireBody) (*hclschemas.Body, error) {
	b := &hclschemas.Body{AnyAttrs: w.AnyAttrs}
	for _, a := range w.Attrs {
		if a.Name == "" {
			return nil, fmt.Errorf("attribute with no name")
		}
		ty, err := ctyjson.UnmarshalType(a.Type)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: type: %w", a.Name, err)
		}
		b.Attrs = append(b.Attrs, &hclschemas.Attr{Name: a.Name, Type: ty, Raw: a.Raw,
			Required: a.Required, Default: a.Default, Doc: a.Doc})
	}
	for _, wb := range w.Blocks {
		if wb.Type == "" {
			return nil, fmt.Errorf("block with no type")
		}
		blk := &hclschemas.Block{Type: wb.Type, Labels: wb.Labels, Repeated: wb.Repeated,
			Required: wb.Required, Defer: wb.Defer, Doc: wb.Doc, Body: &hclschemas.Body{}}
		if wb.Body != nil {
			body, err := fromWireBody(wb.Body)
			if err != nil {
				return nil, fmt.Errorf("block %q: %w", wb.Type, err)
			}
			blk.Body = body
		}
		b.Blocks = append(b.Blocks, blk)
	}
	return b, nil
}

// wireConfig is the wire form of a config value: self-describing, so the
// plugin decodes it without re-deriving the type from its schema.
type wireConfig struct {
	Type  json.RawMessage `json:"type"`
	Value json.RawMessage `json:"value"`
}

// MarshalConfig encodes a config value for the wire as JSON holding its
// cty type and its value, both in cty's JSON encodings. cty.NilVal encodes
// as nil (no config).
func MarshalConfig(v cty.Value) ([]byte, error) {
	if v == cty.NilVal {
		return nil, nil
	}
	if !v.IsWhollyKnown() {
		return nil, fmt.Errorf("marshal config: value is not wholly known")
	}
	ty := v.Type()
	tj, err := ctyjson.MarshalType(ty)
	if err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	vj, err := ctyjson.Marshal(v, ty)
	if err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return json.Marshal(wireConfig{Type: tj, Value: vj})
}

// UnmarshalConfig decodes what [MarshalConfig] encoded; empty input gives
// cty.NilVal.
func UnmarshalConfig(data []byte) (cty.Value, error) {
	if len(data) == 0 {
		return cty.NilVal, nil
	}
	var w wireConfig
	if err := json.Unmarshal(data, &w); err != nil {
		return cty.NilVal, fmt.Errorf("unmarshal config: %w", err)
	}
	ty, err := ctyjson.UnmarshalType(w.Type)
	if err != nil {
		return cty.NilVal, fmt.Errorf("unmarshal config: type: %w", err)
	}
	v, err := ctyjson.Unmarshal(w.Value, ty)
	if err != nil {
		return cty.NilVal, fmt.Errorf("unmarshal config: value: %w", err)
	}
	return v, nil
}
