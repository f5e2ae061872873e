package hclschemas

import "github.com/zclconf/go-cty/cty"

// BoardDocTitle and BoardDocIntro head the generated board.md.
const (
	BoardDocTitle = "Board reference"
	BoardDocIntro = "A board file (`board-support/<board>/board.hcl`) describes an ECU's hardware: exactly one `board` block naming " +
		"each device, the device plugin that drives it and that plugin's config. berthd starts the plugins the board's devices need " +
		"and checks each plugin's `config` block against the schema the plugin declares, so a mistake in it is reported with its line " +
		"before the plugin sees it. Board, plugin and device names match `^[a-z0-9][a-z0-9_.-]{0,62}$` and are unique within their kind. " +
		"No variables or functions are available in a board file.\n"
)

// Board is the schema of a board file: exactly one board block.
var Board = &Body{
	Blocks: []*Block{
		{
			Type: "board", Labels: []string{"name"}, Required: true,
			Doc:  "The board: the device plugins it uses and the devices they drive.",
			Body: BoardBody,
		},
	},
}

// BoardBody is the body of the `board` block.
var BoardBody = &Body{
	Attrs: []*Attr{
		{Name: "description", Type: cty.String, Doc: "What the board is, for people."},
	},
	Blocks: []*Block{
		{
			Type: "plugin", Labels: []string{"name"}, Repeated: true,
			Doc:  "A device plugin: an executable that drives devices. It is started only when a device names it.",
			Body: BoardPlugin,
		},
		{
			Type: "device", Labels: []string{"name"}, Repeated: true,
			Doc:  "A device, by the name containers' grants use (e.g. `can0`), and the plugin device that backs it.",
			Body: BoardDevice,
		},
	},
}

// BoardPlugin is the body of a `plugin` block in a board.
var BoardPlugin = &Body{
	Attrs: []*Attr{
		{Name: "path", Type: cty.String, Required: true,
			Doc: "The plugin binary: a bare name is looked up in the plugin directories (berthd's `--plugin-dir`) and then in `$PATH`; " +
				"a path with a `/` is taken relative to the board file's folder unless absolute."},
		{Name: "sha256", Type: cty.String,
			Doc: "The binary's SHA-256 as 64 hex digits (what `sha256sum` prints). When set, berthd refuses to start a binary with another sum."},
	},
	Blocks: []*Block{
		{
			Type: "config", Defer: true,
			Doc: "The plugin's own configuration. Its shape is the schema the plugin declares (ConfigSchema); " +
				"berthd checks it against that schema, with line numbers, before handing it to the plugin.",
			Body: &Body{},
		},
	},
}

// BoardDevice is the body of a `device` block in a board.
var BoardDevice = &Body{
	Attrs: []*Attr{
		{Name: "class", Type: cty.String, Required: true,
			Doc: "The device class: `can`, `i2c`, `spi`, `gps` or `modem`. The plugin must drive that class."},
		{Name: "plugin", Type: cty.String, Required: true,
			Doc: "The name of the `plugin` block whose plugin drives the device."},
		{Name: "id", Type: cty.String,
			Doc: "The device's ID as its plugin reports it in its fingerprint (e.g. the kernel interface `vcan0`); defaults to the device name."},
	},
}
