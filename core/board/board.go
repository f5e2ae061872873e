// Package board owns the board file (`board-support/<board>/board.hcl`):
// decoding it against hclschemas.Board into a [Board] — each device, the
// plugin that drives it, and that plugin's still-undecoded config block —
// and checking a plugin's config block against the schema the plugin
// declares ([CheckConfig]). Every problem is an hcl.Diagnostic with a
// source range and a sentence on how to fix it; all problems are
// reported, not just the first.
//
// The package knows nothing of processes: core/pluginhost starts the
// plugins a Board names.
package board

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/berth-io/berth/devices"
	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

// Classes are the device classes a board device may have.
var Classes = []devices.Class{devices.ClassCAN, devices.ClassI2C, devices.ClassSPI, devices.ClassGPS, devices.ClassModem}

// sha256RE is a hex SHA-256, as sha256sum prints it.
var sha256RE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// Board is a decoded, checked board file.
type Board struct {
	// Name is the board block's label, e.g. "sim".
	Name        string
	Description string
	// File is the file name diagnostics use; Dir the folder relative
	// plugin paths are resolved against (the board file's folder).
	File string
	Dir  string
	// Source is the file's contents, for rendering diagnostics.
	Source []byte
	// Plugins and Devices are in file order.
	Plugins []*Plugin
	Devices []*Device
	// DeclRange is the board block's header.
	DeclRange hcl.Range
}

// Plugin is one `plugin` block.
type Plugin struct {
	// Name is the block label; devices refer to the plugin by it.
	Name string
	// Path is the binary as written (see hclschemas.BoardPlugin for how
	// it is resolved); PathRange is where it is written.
	Path      string
	PathRange hcl.Range
	// SHA256 is the pinned sum in lower-case hex, or "" when not pinned.
	SHA256      string
	SHA256Range hcl.Range
	// Config is the raw body of the config block, decoded later against
	// the plugin's own schema with [CheckConfig]; nil when the block has
	// no config block.
	Config hcl.Body
	// ConfigRange is the config block's header, or the plugin block's
	// when there is none.
	ConfigRange hcl.Range
	// DeclRange is the plugin block's header.
	DeclRange hcl.Range
}

// Device is one `device` block.
type Device struct {
	// Name is the block label: the name grants and `berth devices` use.
	Name  string
	Class devices.Class
	// Plugin names the Plugin that drives the device.
	Plugin string
	// ID is the device ID the plugin's fingerprint reports (the name
	// when the board does not set one).
	ID string
	// ClassRange, PluginRange and IDRange are where each is written
	// (IDRange is the block header when id is not set).
	ClassRange  hcl.Range
	PluginRange hcl.Range
	IDRange     hcl.Range
	DeclRange   hcl.Range
}

// Plugin returns the plugin block with the given name, or nil.
func (b *Board) Plugin(name string) *Plugin {
	for _, p := range b.Plugins {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Device returns the device with the given name, or nil.
func (b *Board) Device(name string) *Device {
	for _, d := range b.Devices {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// DevicesOf returns the devices the named plugin drives, in file order.
func (b *Board) DevicesOf(plugin string) []*Device {
	var out []*Device
	for _, d := range b.Devices {
		if d.Plugin == plugin {
			out = append(out, d)
		}
	}
	return out
}

// Load reads and checks the board file at path. It returns the board, or
// nil when diags has errors; diags may hold warnings either way.
func Load(path string) (*Board, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read board file",
			Detail:   fmt.Sprintf("Reading %s failed: %v; check the path and its permissions.", path, err),
		}}
	}
	return Parse(src, path)
}

// Parse is Load on bytes already read. filename is used in diagnostics and
// kept in Board.File; relative plugin paths are resolved against its
// folder. The returned Board keeps src in Source.
func Parse(src []byte, filename string) (*Board, hcl.Diagnostics) {
	b, diags := parse(src, filename)
	hclschemas.SortByPlace(diags)
	if diags.HasErrors() {
		return nil, diags
	}
	return b, diags
}

func parse(src []byte, filename string) (*Board, hcl.Diagnostics) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	top, d := hclschemas.Decode(file.Body, hclschemas.Board, nil)
	diags = append(diags, d...)
	blk := top.Block("board")
	if blk == nil {
		return nil, diags
	}
	dec := &decoder{}
	b := &Board{Name: blk.Labels[0], File: filename, Dir: filepath.Dir(filename), Source: src, DeclRange: blk.DefRange}
	dec.checkName("board", b.Name, blk.LabelRanges[0])
	if a := blk.Content.Attr("description"); a != nil {
		b.Description = a.Value.AsString()
	}

	seen := map[string]map[string]hcl.Range{"plugin": {}, "device": {}}
	unique := func(n *hclschemas.BlockNode) bool {
		name := n.Labels[0]
		if !dec.checkName(n.Type, name, n.LabelRanges[0]) {
			return false
		}
		if prev, dup := seen[n.Type][name]; dup {
			dec.errorf(n.LabelRanges[0], "Duplicate "+n.Type,
				"A %s named %q is already defined at %s; rename or remove one of them.", n.Type, name, prev)
			return false
		}
		seen[n.Type][name] = n.DefRange
		return true
	}
	for _, n := range blk.Content.BlocksOf("plugin") {
		if p := dec.plugin(n); unique(n) && p != nil {
			b.Plugins = append(b.Plugins, p)
		}
	}
	declaredPlugins := map[string]bool{}
	for _, n := range blk.Content.BlocksOf("plugin") {
		declaredPlugins[n.Labels[0]] = true
	}
	for _, n := range blk.Content.BlocksOf("device") {
		if dv := dec.device(n, declaredPlugins); unique(n) && dv != nil {
			b.Devices = append(b.Devices, dv)
		}
	}
	dec.checkDeviceIDs(b)
	dec.checkUnusedPlugins(b)
	return b, append(diags, dec.diags...)
}

// decoder turns decoded schema nodes into the model, collecting
// diagnostics. An attribute absent from a node is unset or already
// reported by the schema decoder.
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

func (d *decoder) checkName(kind, n string, rng hcl.Range) bool {
	if hclschemas.NamePattern.MatchString(n) {
		return true
	}
	d.errorf(rng, "Invalid "+kind+" name",
		"%q is not a valid %s name: use 1 to 63 lower-case letters, digits, '_', '.' or '-', starting with a letter or digit (e.g. %q).",
		n, kind, hclschemas.SuggestName(n, "dev"))
	return false
}

// plugin decodes a plugin block; nil when a required part is missing or
// wrong (already reported).
func (d *decoder) plugin(n *hclschemas.BlockNode) *Plugin {
	p := &Plugin{Name: n.Labels[0], DeclRange: n.DefRange, ConfigRange: n.DefRange}
	ok := true
	if a := n.Content.Attr("path"); a == nil {
		ok = false
	} else if p.Path, p.PathRange = a.Value.AsString(), a.Range; strings.TrimSpace(p.Path) == "" {
		d.errorf(a.Range, "Empty plugin path",
			"The plugin %q has an empty path; name the plugin binary, e.g. \"berth-plugin-%s\".", p.Name, p.Name)
		ok = false
	}
	if a := n.Content.Attr("sha256"); a != nil {
		sum := strings.TrimSpace(a.Value.AsString())
		p.SHA256Range = a.Range
		if !sha256RE.MatchString(sum) {
			d.errorf(a.Range, "Invalid sha256",
				"sha256 %q is not a SHA-256: write the 64 hex digits `sha256sum %s` prints, or remove the attribute to not pin the binary.",
				sum, p.Path)
			ok = false
		}
		p.SHA256 = strings.ToLower(sum)
	}
	if c := n.Content.Block("config"); c != nil {
		p.Config, p.ConfigRange = c.Body, c.DefRange
	}
	if !ok {
		return nil
	}
	return p
}

// device decodes a device block; nil when a required part is missing or
// wrong (already reported).
// declaredPlugins holds every plugin block's name, also of those that
// failed to decode (so a device naming one is not reported twice).
func (d *decoder) device(n *hclschemas.BlockNode, declaredPlugins map[string]bool) *Device {
	dv := &Device{Name: n.Labels[0], DeclRange: n.DefRange, ID: n.Labels[0], IDRange: n.LabelRanges[0]}
	ok := true
	if a := n.Content.Attr("class"); a == nil {
		ok = false
	} else {
		dv.Class, dv.ClassRange = devices.Class(a.Value.AsString()), a.Range
		if !slices.Contains(Classes, dv.Class) {
			names := make([]string, len(Classes))
			for i, c := range Classes {
				names[i] = fmt.Sprintf("%q", c)
			}
			d.errorf(a.Range, "Unknown device class",
				"%q is not a device class; use one of %s.", dv.Class, strings.Join(names, ", "))
			ok = false
		}
	}
	if a := n.Content.Attr("plugin"); a == nil {
		ok = false
	} else {
		dv.Plugin, dv.PluginRange = a.Value.AsString(), a.Range
		if !declaredPlugins[dv.Plugin] {
			d.errorf(a.Range, "Unknown plugin",
				"No plugin %q is declared in this board%s; add a plugin %q block or fix the name.",
				dv.Plugin, declared(declaredPlugins), dv.Plugin)
			ok = false
		}
	}
	if a := n.Content.Attr("id"); a != nil {
		dv.ID, dv.IDRange = a.Value.AsString(), a.Range
		if strings.TrimSpace(dv.ID) == "" {
			d.errorf(a.Range, "Empty device ID",
				"The device ID is empty; write the ID the plugin reports for the device (e.g. \"vcan0\"), or remove id to use the device name.")
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return dv
}

func declared(plugins map[string]bool) string {
	if len(plugins) == 0 {
		return " (none is)"
	}
	names := make([]string, 0, len(plugins))
	for n := range plugins {
		names = append(names, fmt.Sprintf("%q", n))
	}
	sort.Strings(names)
	return " (declared: " + strings.Join(names, ", ") + ")"
}

// checkDeviceIDs refuses two board devices backed by the same plugin
// device: they would be one bus under two names with two sets of grants.
func (d *decoder) checkDeviceIDs(b *Board) {
	type key struct{ plugin, id string }
	first := map[key]*Device{}
	for _, dv := range b.Devices {
		k := key{dv.Plugin, dv.ID}
		if prev, dup := first[k]; dup {
			d.errorf(dv.IDRange, "Device used twice",
				"Device %q is plugin %q's device %q, which device %q (%s) already is; give each board device its own plugin device.",
				dv.Name, dv.Plugin, dv.ID, prev.Name, prev.DeclRange)
			continue
		}
		first[k] = dv
	}
}

// checkUnusedPlugins warns about plugins no device names: they are not
// started, which is rarely what the author meant.
func (d *decoder) checkUnusedPlugins(b *Board) {
	for _, p := range b.Plugins {
		if len(b.DevicesOf(p.Name)) == 0 {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Unused plugin",
				Detail:   fmt.Sprintf("No device names plugin %q, so it is not started; add a device with plugin = %q or remove the block.", p.Name, p.Name),
				Subject:  p.DeclRange.Ptr(),
			})
		}
	}
}
