package hclschemas

import "github.com/zclconf/go-cty/cty"

var (
	listOfString = cty.List(cty.String)
	mapOfString  = cty.Map(cty.String)
)

// Playbook is the schema of a playbook file: input variables, locals and
// exactly one stack. The stack block is deferred (its body is decoded with
// Stack once variables and locals are known), and so are locals (their
// attributes are free-form expressions evaluated in dependency order).
var Playbook = &Body{
	Blocks: []*Block{
		{
			Type: "variable", Labels: []string{"name"}, Repeated: true,
			Doc:  "An input variable, referenced as `var.<name>` and set with `-var <name>=<value>` on the command line.",
			Body: Variable,
		},
		{
			Type: "locals", Repeated: true, Defer: true,
			Doc:  "Named values, referenced as `local.<name>`; they may refer to variables and to each other, but not in a cycle.",
			Body: &Body{AnyAttrs: true},
		},
		{
			Type: "stack", Labels: []string{"name"}, Required: true, Defer: true,
			Doc:  "The one stack the playbook describes: containers that run and are updated together, with their volumes and networks.",
			Body: Stack,
		},
	},
}

// Variable is the body of a `variable` block.
var Variable = &Body{
	Attrs: []*Attr{
		{Name: "type", Type: cty.DynamicPseudoType, Raw: true, Default: "any",
			Doc: "Type constraint: `string`, `number`, `bool`, `list(string)`, `map(string)`. A `-var` value is converted to it."},
		{Name: "default", Type: cty.DynamicPseudoType,
			Doc: "Value used when no `-var` sets the variable; without one, a value must be given. It may not reference other variables."},
		{Name: "description", Type: cty.String, Doc: "What the variable is for."},
	},
}

// Stack is the body of the `stack` block.
var Stack = &Body{
	Blocks: []*Block{
		{
			Type: "network", Labels: []string{"name"}, Repeated: true,
			Doc: "A private bridge network; containers that list it in `networks` reach each other by container name.",
			Body: &Body{Attrs: []*Attr{
				{Name: "subnet", Type: cty.String,
					Doc: "IPv4 prefix for the bridge, /29 or larger, e.g. `10.89.0.0/24`; when unset berth picks one."},
			}},
		},
		{
			Type: "volume", Labels: []string{"name"}, Repeated: true,
			Doc: "A named volume that containers mount with a `volume` block.",
			Body: &Body{Attrs: []*Attr{
				{Name: "type", Type: cty.String, Default: `"persistent"`,
					Doc: "`persistent` (on disk, survives restarts, `berth down` and updates) or `tmpfs` (in memory)."},
				{Name: "size", Type: cty.String,
					Doc: "Size limit of a `tmpfs` volume, e.g. `16MiB`; not allowed on a persistent volume."},
			}},
		},
		{
			Type: "container", Labels: []string{"name"}, Repeated: true,
			Doc:  "A container; its name is also its hostname on the networks it joins.",
			Body: Container,
		},
	},
}

// GrantClasses are the device grant block types a container may hold.
// `can` is decoded with [CANGrant]; the others are reserved for the device
// broker and refused by core/playbook.
var GrantClasses = []string{"can", "i2c", "spi", "gps", "modem"}

// CANGrant is the body of a container's `can "<name>"` grant block: what
// the container may receive and send on one board CAN device. Filters are
// read by core/broker.ParseFilter.
var CANGrant = &Body{
	Attrs: []*Attr{
		{Name: "bus", Type: cty.String, Required: true,
			Doc: "The board device of class `can` the grant is on, e.g. `can0`; `berth validate --board FILE` checks it against a board file."},
		{Name: "receive", Type: listOfString, Default: "[]",
			Doc: "ID filters of the frames the container receives; an empty or absent list receives none. " +
				"A filter is one ID (`\"0x7DF\"`), a range (`\"0x100-0x1FF\"`), id/mask (`\"0x18DAF100/0x1FFFFF00\"`) or `\"*\"` (every ID); " +
				"IDs are hexadecimal with a `0x` prefix, extended when above `0x7FF` or suffixed `x` (`\"0x123x\"`)."},
		{Name: "send", Type: listOfString, Default: "[]",
			Doc: "ID filters, as in `receive`, of the frames the container may send; an empty or absent list sends none."},
		{Name: "send_rate", Type: cty.Number, Default: "0",
			Doc: "Sustained send limit in frames a second, e.g. `100` or `0.5`; 0 means no limit."},
		{Name: "send_burst", Type: cty.Number,
			Doc: "Frames that may be sent back to back under `send_rate`; default a tenth of a second's worth, at least 1. Needs `send_rate`."},
		{Name: "fd", Type: cty.Bool, Default: "false",
			Doc: "A CAN FD session: on a bus that runs CAN FD, the container may send FD frames and receives them."},
		{Name: "error_frames", Type: cty.Bool, Default: "false",
			Doc: "Deliver the controller's error frames (bus-off, error passive, ...); `receive` does not apply to them."},
		{Name: "native", Type: cty.Bool, Default: "false",
			Doc: "Ask for a SocketCAN interface named after the grant inside the container (a vxcan pair with can-gw filters), " +
				"so unmodified SocketCAN programs work; berthd serves the grant through the device socket instead " +
				"when the kernel or the grant (a `send_rate`) does not allow it."},
	},
}

// Container is the body of a `container` block.
var Container = &Body{
	Attrs: []*Attr{
		{Name: "images", Type: listOfString, Required: true,
			Doc: "Image references, bottom to top; their layers are stacked into one root file system. At least one."},
		{Name: "command", Type: listOfString, Doc: "Replaces the top image's entrypoint."},
		{Name: "args", Type: listOfString, Doc: "Replaces the top image's cmd."},
		{Name: "env", Type: mapOfString, Doc: "Environment variables, added to the images' own."},
		{Name: "working_dir", Type: cty.String, Doc: "Absolute working directory; default is the image's."},
		{Name: "user", Type: cty.String, Doc: "`uid`, `uid:gid` or a user name from the image; default is the image's."},
		{Name: "read_only", Type: cty.Bool, Default: "true",
			Doc: "Read-only root file system; `/tmp` is then a writable tmpfs."},
		{Name: "networks", Type: listOfString,
			Doc: "Stack networks to join; the container is then on a bridge (network mode `bridge`)."},
		{Name: "network_mode", Type: cty.String, Default: `"none"`,
			Doc: "`none` (loopback only) or `host`; `bridge` is implied by `networks` and `host` may not be combined with it."},
	},
	Blocks: append([]*Block{
		{
			Type: "volume", Labels: []string{"name"}, Repeated: true,
			Doc: "Mounts the stack volume `name` into the container.",
			Body: &Body{Attrs: []*Attr{
				{Name: "path", Type: cty.String, Required: true, Doc: "Absolute mount path inside the container."},
				{Name: "read_only", Type: cty.Bool, Default: "false", Doc: "Mount read-only."},
			}},
		},
		{
			Type: "resources",
			Doc:  "cgroup limits; an unset limit means none.",
			Body: &Body{Attrs: []*Attr{
				{Name: "memory", Type: cty.String,
					Doc: "Memory limit: `64MiB`, `1.5GiB`, `64MB`, Docker's `64m`, or bytes."},
				{Name: "cpu", Type: cty.Number, Doc: "CPU limit in CPUs, e.g. `0.5`."},
				{Name: "pids", Type: cty.Number, Doc: "Maximum number of processes."},
			}},
		},
		{
			Type: "restart",
			Doc:  "When an exited container is started again. The n-th consecutive restart waits min(delay × 2^(n-1), max_delay).",
			Body: &Body{Attrs: []*Attr{
				{Name: "policy", Type: cty.String, Default: `"on-failure"`, Doc: "`always`, `on-failure` or `never`."},
				{Name: "attempts", Type: cty.Number, Default: "0", Doc: "Consecutive restarts before giving up; 0 means no limit."},
				{Name: "delay", Type: cty.String, Default: `"1s"`, Doc: "Wait before the first restart, e.g. `500ms`, `1s`."},
				{Name: "max_delay", Type: cty.String, Default: `"1m"`, Doc: "Upper bound of the doubling wait."},
			}},
		},
		{
			Type: "health",
			Doc:  "A health check run inside the container; needed for a `healthy` dependency on it.",
			Body: &Body{Attrs: []*Attr{
				{Name: "exec", Type: listOfString, Required: true, Doc: "Command and arguments; exit status 0 means healthy."},
				{Name: "interval", Type: cty.String, Default: `"10s"`, Doc: "Time between checks."},
				{Name: "timeout", Type: cty.String, Default: `"5s"`, Doc: "A check running longer fails."},
				{Name: "retries", Type: cty.Number, Default: "3", Doc: "Consecutive failures that make the container unhealthy."},
				{Name: "start_period", Type: cty.String, Default: `"0s"`, Doc: "Failures during this time after start do not count."},
			}},
		},
		{
			Type: "stop",
			Doc:  "How the container is stopped.",
			Body: &Body{Attrs: []*Attr{
				{Name: "signal", Type: cty.String, Default: `"SIGTERM"`, Doc: "Signal sent first, by name: `SIGTERM`, `TERM`, `SIGINT`, ..."},
				{Name: "timeout", Type: cty.String, Default: `"10s"`, Doc: "Wait before SIGKILL."},
			}},
		},
		{
			Type: "depends_on", Labels: []string{"container"}, Repeated: true,
			Doc: "Starts this container after the named one (and stops it before).",
			Body: &Body{Attrs: []*Attr{
				{Name: "condition", Type: cty.String, Default: `"started"`,
					Doc: "`started`, or `healthy` (the dependency needs a `health` block)."},
			}},
		},
	}, grantBlocks()...),
}

// grantBlocks returns the device grant block specs: `can` with its body,
// the other classes reserved (their bodies are left undecoded).
func grantBlocks() []*Block {
	out := make([]*Block, 0, len(GrantClasses))
	for _, class := range GrantClasses {
		if class == "can" {
			out = append(out, &Block{
				Type: class, Labels: []string{"name"}, Repeated: true,
				Doc: "A CAN grant: what the container may do on one board CAN bus. The container opens it by name " +
					"through its device socket (`/run/berth/device.sock`). Grant names are unique within a container.",
				Body: CANGrant,
			})
			continue
		}
		out = append(out, &Block{
			Type: class, Labels: []string{"name"}, Repeated: true, Defer: true,
			Doc:  "Device grant; reserved for the device broker and not yet supported.",
			Body: &Body{},
		})
	}
	return out
}
