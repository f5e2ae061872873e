package canplugin

import (
	"fmt"
	"math/big"
	"sort"

	"github.com/zclconf/go-cty/cty"

	"github.com/berth-io/berth/devices"
)

func attr(v cty.Value, name string) cty.Value {
	if v == cty.NilVal || v.IsNull() || !v.Type().IsObjectType() || !v.Type().HasAttribute(name) {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	return v.GetAttr(name)
}

// String returns a string attribute of obj, or def when absent or null.
func String(obj cty.Value, name, def string) (string, error) {
	v := attr(obj, name)
	if v.IsNull() {
		return def, nil
	}
	if v.Type() != cty.String {
		return "", fmt.Errorf("%w: %s is a %s, want a string", devices.ErrInvalidConfig, name, v.Type().FriendlyName())
	}
	return v.AsString(), nil
}

// Bool returns a bool attribute of obj, or def when absent or null.
func Bool(obj cty.Value, name string, def bool) (bool, error) {
	v := attr(obj, name)
	if v.IsNull() {
		return def, nil
	}
	if v.Type() != cty.Bool {
		return false, fmt.Errorf("%w: %s is a %s, want a bool", devices.ErrInvalidConfig, name, v.Type().FriendlyName())
	}
	return v.True(), nil
}

// Uint returns a whole, non-negative number attribute of obj no larger
// than max, or 0 when absent or null.
func Uint(obj cty.Value, name string, max uint64) (uint64, error) {
	v := attr(obj, name)
	if v.IsNull() {
		return 0, nil
	}
	if v.Type() != cty.Number {
		return 0, fmt.Errorf("%w: %s is a %s, want a number", devices.ErrInvalidConfig, name, v.Type().FriendlyName())
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() || bf.Sign() < 0 || bf.Cmp(new(big.Float).SetUint64(max)) > 0 {
		return 0, fmt.Errorf("%w: %s = %s: want a whole number from 0 to %d", devices.ErrInvalidConfig, name, bf.Text('g', -1), max)
	}
	n, _ := bf.Uint64()
	return n, nil
}

// Entries returns the elements of a map or object attribute of obj sorted
// by key; nil when absent or null.
func Entries(obj cty.Value, name string) ([]Entry, error) {
	v := attr(obj, name)
	if v.IsNull() {
		return nil, nil
	}
	if !v.Type().IsMapType() && !v.Type().IsObjectType() {
		return nil, fmt.Errorf("%w: %s is a %s, want a map", devices.ErrInvalidConfig, name, v.Type().FriendlyName())
	}
	out := []Entry{}
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		out = append(out, Entry{Key: k.AsString(), Value: e})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Entry is one element of a map attribute.
type Entry struct {
	Key   string
	Value cty.Value
}

// Object checks that a config value is an object (or null, or cty.NilVal:
// no config) and returns it; attributes may be absent or null, meaning
// the board did not set them. Errors wrap devices.ErrInvalidConfig.
func Object(v cty.Value) (cty.Value, error) {
	if v == cty.NilVal || v.IsNull() {
		return cty.NullVal(cty.DynamicPseudoType), nil
	}
	if !v.Type().IsObjectType() {
		return cty.NilVal, fmt.Errorf("%w: config is a %s, want an object", devices.ErrInvalidConfig, v.Type().FriendlyName())
	}
	if !v.IsWhollyKnown() {
		return cty.NilVal, fmt.Errorf("%w: config is not wholly known", devices.ErrInvalidConfig)
	}
	return v, nil
}
