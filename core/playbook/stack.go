package playbook

import (
	"net/netip"
	"path"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"

	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

// imageRefRE is the OCI distribution reference grammar:
// [domain[:port]/]path[:tag][@algorithm:hex].
var imageRefRE = regexp.MustCompile(`^` +
	`(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?/)?` +
	`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*` +
	`(?::[\w][\w.-]{0,127})?` +
	`(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`)

// Defaults applied by the decoder.
const (
	defaultRestartDelay    = time.Second
	defaultRestartMaxDelay = time.Minute
	defaultStopTimeout     = 10 * time.Second
	defaultHealthInterval  = 10 * time.Second
	defaultHealthTimeout   = 5 * time.Second
	defaultHealthRetries   = 3
	minSubnetBits          = 29 // a /29 leaves 5 addresses after gateway and broadcast
)

func (d *decoder) checkName(kind, n string, rng hcl.Range) bool {
	return d.checkNameFor(kind, "names become directory and host names", n, rng)
}

// checkNameFor is checkName with why, the reason the name is restricted.
func (d *decoder) checkNameFor(kind, why, n string, rng hcl.Range) bool {
	if hclschemas.NamePattern.MatchString(n) {
		return true
	}
	d.errorf(rng, "Invalid "+kind+" name",
		"%q is not a valid %s name: %s, so use 1 to 63 lower-case letters, digits, '_', '.' or '-', starting with a letter or digit (e.g. %q).",
		n, kind, why, hclschemas.SuggestName(n, "app"))
	return false
}

// decodeStack decodes the deferred stack block body with ctx and checks it.
func decodeStack(blk *hclschemas.BlockNode, ctx *hcl.EvalContext) (*Stack, hcl.Diagnostics) {
	d := &decoder{}
	s := &Stack{Name: blk.Labels[0], DeclRange: blk.DefRange}
	d.checkName("stack", s.Name, blk.LabelRanges[0])
	content, diags := hclschemas.Decode(blk.Body, hclschemas.Stack, ctx)
	d.diags = append(d.diags, diags...)

	seen := map[string]map[string]hcl.Range{"network": {}, "volume": {}, "container": {}}
	unique := func(b *hclschemas.BlockNode) bool {
		n := b.Labels[0]
		if !d.checkName(b.Type, n, b.LabelRanges[0]) {
			return false
		}
		if prev, dup := seen[b.Type][n]; dup {
			d.errorf(b.LabelRanges[0], "Duplicate "+b.Type,
				"A %s named %q is already defined at %s; rename or remove one of them.", b.Type, n, prev)
			return false
		}
		seen[b.Type][n] = b.DefRange
		return true
	}

	for _, b := range content.BlocksOf("network") {
		if unique(b) {
			s.Networks = append(s.Networks, d.network(b))
		}
	}
	d.checkSubnetOverlap(s.Networks)
	for _, b := range content.BlocksOf("volume") {
		if unique(b) {
			s.Volumes = append(s.Volumes, d.volume(b))
		}
	}
	for _, b := range content.BlocksOf("container") {
		c := d.container(b, s)
		if unique(b) {
			s.Containers = append(s.Containers, c)
		}
	}
	d.checkDependencies(s)
	return s, d.diags
}

func (d *decoder) network(b *hclschemas.BlockNode) *Network {
	n := &Network{Name: b.Labels[0], DeclRange: b.DefRange}
	sub, a := d.str(b.Content, "subnet", "")
	if a == nil {
		return n
	}
	p, err := netip.ParsePrefix(sub)
	switch {
	case err != nil || !p.Addr().Is4():
		d.errorf(a.Range, "Invalid subnet", "subnet %q is not an IPv4 prefix; write one such as \"10.89.0.0/24\".", sub)
	case p.Bits() > minSubnetBits:
		d.errorf(a.Range, "Subnet too small", "subnet %q has room for too few containers; use a /%d or larger prefix, such as %q.",
			sub, minSubnetBits, netip.PrefixFrom(p.Addr(), 24).Masked().String())
	case p.Masked() != p:
		d.errorf(a.Range, "Invalid subnet", "subnet %q has host bits set; write the network address %q.", sub, p.Masked().String())
	default:
		n.Subnet = p
	}
	return n
}

func (d *decoder) checkSubnetOverlap(nets []*Network) {
	for i, a := range nets {
		for _, b := range nets[:i] {
			if a.Subnet.IsValid() && b.Subnet.IsValid() && a.Subnet.Overlaps(b.Subnet) {
				d.errorf(a.DeclRange, "Overlapping subnets",
					"The subnet %s of network %q overlaps %s of network %q; give each network its own range.",
					a.Subnet, a.Name, b.Subnet, b.Name)
			}
		}
	}
}

func (d *decoder) volume(b *hclschemas.BlockNode) *Volume {
	v := &Volume{Name: b.Labels[0], DeclRange: b.DefRange}
	v.Type = VolumeType(d.enum(b.Content, "type", string(VolumePersistent), "Invalid volume type",
		string(VolumePersistent), string(VolumeTmpfs)))
	size, a := d.size(b.Content, "size")
	if a != nil && v.Type == VolumePersistent {
		d.errorf(a.Range, "Size on a persistent volume",
			"Only tmpfs volumes take a size; remove size, or set type = \"tmpfs\" if the data may be lost when the stack goes down.")
		return v
	}
	v.Size = size
	return v
}

func (d *decoder) container(b *hclschemas.BlockNode, s *Stack) *Container {
	c := &Container{
		Name:        b.Labels[0],
		DeclRange:   b.DefRange,
		ReadOnly:    true,
		NetworkMode: NetworkNone,
		Restart: Restart{
			Policy: RestartOnFailure, Delay: defaultRestartDelay, MaxDelay: defaultRestartMaxDelay,
		},
		Stop: Stop{Signal: syscall.SIGTERM, Timeout: defaultStopTimeout},
	}
	body := b.Content
	grants := map[string]hcl.Range{}

	images, ranges, a := d.strList(body, "images")
	if a != nil && len(images) == 0 && a.Value.LengthInt() == 0 {
		d.errorf(a.Range, "No images",
			"A container needs at least one image; list image references bottom to top, e.g. images = [\"berth.local/busybox:1.35\"].")
	}
	for i, ref := range images {
		if !imageRefRE.MatchString(ref) {
			d.errorf(ranges[i], "Invalid image reference",
				"%q is not an image reference; write [registry/]repository[:tag][@digest] in lower case, such as \"berth.local/app:1\".", ref)
			continue
		}
		c.Images = append(c.Images, ImageRef{Ref: ref, Range: ranges[i]})
	}
	c.Command, _, _ = d.strList(body, "command")
	c.Args, _, _ = d.strList(body, "args")
	env, envAttr := d.strMap(body, "env")
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			d.errorf(envAttr.Range, "Invalid environment variable",
				"The environment variable %q cannot be passed to a process: names must be non-empty without '=' and names and values without NUL bytes.", k)
			delete(env, k)
		}
	}
	c.Env = env
	var wd *hclschemas.AttrNode
	c.WorkingDir, wd = d.str(body, "working_dir", "")
	if wd != nil && !path.IsAbs(c.WorkingDir) {
		d.errorf(wd.Range, "Relative working directory", "working_dir %q must be an absolute path, such as \"/app\".", c.WorkingDir)
	}
	var user *hclschemas.AttrNode
	c.User, user = d.str(body, "user", "")
	if user != nil && strings.TrimSpace(c.User) == "" {
		d.errorf(user.Range, "Empty user", "user is empty; remove it to use the image's user, or write \"1000:1000\" or a user name.")
	}
	c.ReadOnly = d.boolean(body, "read_only", true)
	d.networking(c, body, s)

	for _, blk := range body.Blocks {
		switch blk.Type {
		case "volume":
			d.mount(c, blk, s)
		case "resources":
			d.resources(c, blk.Content)
		case "restart":
			d.restart(c, blk.Content)
		case "health":
			d.health(c, blk.Content)
		case "stop":
			d.stop(c, blk.Content)
		case "depends_on":
			c.DependsOn = append(c.DependsOn, Dependency{
				Container: blk.Labels[0],
				Condition: Condition(d.enum(blk.Content, "condition", string(ConditionStarted), "Invalid dependency condition",
					string(ConditionStarted), string(ConditionHealthy))),
				DeclRange: blk.DefRange,
			})
		default: // device grants: the only other blocks the schema allows
			if g, ok := d.grant(blk, grants); ok {
				c.Grants = append(c.Grants, g)
			}
		}
	}
	return c
}

func (d *decoder) networking(c *Container, body *hclschemas.Content, s *Stack) {
	nets, ranges, netsAttr := d.strList(body, "networks")
	mode, modeAttr := d.str(body, "network_mode", "")
	switch {
	case modeAttr == nil:
	case mode == string(NetworkNone) || mode == string(NetworkHost):
		c.NetworkMode = NetworkMode(mode)
	case mode == string(NetworkBridge):
		if len(nets) == 0 {
			d.errorf(modeAttr.Range, "Bridge without networks",
				"network_mode \"bridge\" is implied by networks; remove network_mode and list the stack networks to join in networks.")
		}
	default:
		d.errorf(modeAttr.Range, "Invalid network mode",
			"network_mode is %q; it must be \"none\" or \"host\" (to join stack networks, list them in networks instead).", mode)
	}
	if netsAttr == nil || len(nets) == 0 {
		return
	}
	if modeAttr != nil && mode != string(NetworkBridge) {
		d.errorf(modeAttr.Range, "Conflicting network settings",
			"network_mode %q cannot be combined with networks; remove network_mode to join the listed networks, or remove networks.", mode)
	}
	c.NetworkMode = NetworkBridge
	seen := map[string]bool{}
	for i, n := range nets {
		switch {
		case seen[n]:
			d.errorf(ranges[i], "Duplicate network", "The network %q is listed twice; remove one.", n)
		case !hasNetwork(s, n):
			d.errorf(ranges[i], "Unknown network",
				"There is no network %q in this stack (declared: %s); add a network %q block to the stack or fix the name.", n, networkNames(s), n)
		default:
			c.Networks = append(c.Networks, n)
		}
		seen[n] = true
	}
}

func hasNetwork(s *Stack, n string) bool {
	for _, x := range s.Networks {
		if x.Name == n {
			return true
		}
	}
	return false
}

func networkNames(s *Stack) string {
	var names []string
	for _, x := range s.Networks {
		names = append(names, x.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func volumeNames(s *Stack) string {
	var names []string
	for _, x := range s.Volumes {
		names = append(names, x.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func (d *decoder) mount(c *Container, blk *hclschemas.BlockNode, s *Stack) {
	m := Mount{Volume: blk.Labels[0], DeclRange: blk.DefRange}
	found := false
	for _, v := range s.Volumes {
		found = found || v.Name == m.Volume
	}
	if !found {
		d.errorf(blk.LabelRanges[0], "Unknown volume",
			"There is no volume %q in this stack (declared: %s); add a volume %q {} block to the stack or fix the name.", m.Volume, volumeNames(s), m.Volume)
	}
	p, a := d.str(blk.Content, "path", "")
	m.ReadOnly = d.boolean(blk.Content, "read_only", false)
	if a == nil {
		return
	}
	switch {
	case !path.IsAbs(p):
		d.errorf(a.Range, "Relative mount path", "The mount path %q must be absolute, such as \"/data\".", p)
		return
	case path.Clean(p) == "/":
		d.errorf(a.Range, "Mount over root", "A volume cannot be mounted at \"/\"; mount it at a directory such as \"/data\".")
		return
	}
	m.Path = path.Clean(p)
	for _, other := range c.Mounts {
		if other.Path == m.Path {
			d.errorf(a.Range, "Duplicate mount path",
				"The path %q is already the mount point of volume %q at %s; use another path.", m.Path, other.Volume, other.DeclRange)
			return
		}
	}
	if found {
		c.Mounts = append(c.Mounts, m)
	}
}

func (d *decoder) resources(c *Container, body *hclschemas.Content) {
	c.Resources.Memory, _ = d.size(body, "memory")
	c.Resources.CPU = d.number(body, "cpu")
	c.Resources.PIDs = d.integer(body, "pids", 0, 0)
}

func (d *decoder) restart(c *Container, body *hclschemas.Content) {
	r := &c.Restart
	r.Policy = RestartPolicy(d.enum(body, "policy", string(RestartOnFailure), "Invalid restart policy",
		string(RestartAlways), string(RestartOnFailure), string(RestartNever)))
	r.Attempts = int(d.integer(body, "attempts", 0, 0))
	r.Delay = d.duration(body, "delay", defaultRestartDelay)
	r.MaxDelay = d.duration(body, "max_delay", defaultRestartMaxDelay)
	if a := body.Attr("max_delay"); a != nil && r.MaxDelay < r.Delay {
		d.errorf(a.Range, "Invalid max_delay", "max_delay %s is shorter than delay %s; make it at least as long.", r.MaxDelay, r.Delay)
	}
}

func (d *decoder) health(c *Container, body *hclschemas.Content) {
	h := &Health{}
	var a *hclschemas.AttrNode
	h.Exec, _, a = d.strList(body, "exec")
	if a != nil && len(h.Exec) == 0 {
		d.errorf(a.Range, "Empty health command", "exec needs a command to run inside the container, e.g. exec = [\"/bin/app\", \"-ping\"].")
	}
	h.Interval = d.duration(body, "interval", defaultHealthInterval)
	h.Timeout = d.duration(body, "timeout", defaultHealthTimeout)
	h.Retries = int(d.integer(body, "retries", 1, defaultHealthRetries))
	h.StartPeriod = d.duration(body, "start_period", 0)
	for _, n := range []string{"interval", "timeout"} {
		if a := body.Attr(n); a != nil && ((n == "interval" && h.Interval == 0) || (n == "timeout" && h.Timeout == 0)) {
			d.errorf(a.Range, "Invalid duration", "%s must be longer than zero, such as \"2s\".", n)
		}
	}
	c.Health = h
}

func (d *decoder) stop(c *Container, body *hclschemas.Content) {
	if sig, a := d.str(body, "signal", ""); a != nil {
		s, err := ParseSignal(sig)
		if err != nil {
			d.errorf(a.Range, "Unknown signal", "%v; name a signal such as \"SIGTERM\", \"SIGINT\" or \"SIGQUIT\".", err)
		} else {
			c.Stop.Signal = s
		}
	}
	c.Stop.Timeout = d.duration(body, "timeout", defaultStopTimeout)
}

// checkDependencies checks every depends_on against the stack's containers
// and reports each dependency cycle once.
func (d *decoder) checkDependencies(s *Stack) {
	for _, c := range s.Containers {
		seen := map[string]bool{}
		valid := c.DependsOn[:0]
		for _, dep := range c.DependsOn {
			target := s.Container(dep.Container)
			switch {
			case dep.Container == c.Name:
				d.errorf(dep.DeclRange, "Self dependency", "The container %q cannot depend on itself; remove this depends_on block.", c.Name)
				continue
			case target == nil:
				d.errorf(dep.DeclRange, "Unknown dependency",
					"There is no container %q in this stack; fix the name or remove this depends_on block.", dep.Container)
				continue
			case seen[dep.Container]:
				d.errorf(dep.DeclRange, "Duplicate dependency", "%q already depends on %q; remove this depends_on block.", c.Name, dep.Container)
				continue
			case dep.Condition == ConditionHealthy && target.Health == nil:
				d.errorf(dep.DeclRange, "Dependency cannot become healthy",
					"The container %q has no health block, so it never becomes healthy; add a health block to %q or use condition = \"started\".",
					dep.Container, dep.Container)
			}
			seen[dep.Container] = true
			valid = append(valid, dep)
		}
		c.DependsOn = valid
	}
	for _, cycle := range dependencyCycles(s) {
		names := make([]string, len(cycle))
		for i, c := range cycle {
			names[i] = c.Name
		}
		names = append(names, cycle[0].Name)
		last := cycle[len(cycle)-1]
		rng := last.DeclRange
		for _, dep := range last.DependsOn {
			if dep.Container == cycle[0].Name {
				rng = dep.DeclRange
			}
		}
		d.errorf(rng, "Dependency cycle: "+strings.Join(names, " -> "),
			"Each of these containers waits for the next, so none can start; remove one of the depends_on blocks in the cycle.")
	}
}

// dependencyCycles returns the cycles found by a depth-first walk in file
// order; each is a list of containers where each depends on the next and
// the last on the first.
func dependencyCycles(s *Stack) [][]*Container {
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[*Container]int{}
	var path []*Container
	var cycles [][]*Container
	var visit func(c *Container)
	visit = func(c *Container) {
		state[c] = visiting
		path = append(path, c)
		for _, dep := range c.DependsOn {
			t := s.Container(dep.Container)
			if t == nil {
				continue
			}
			switch state[t] {
			case unvisited:
				visit(t)
			case visiting:
				for i := range path {
					if path[i] == t {
						cycles = append(cycles, append([]*Container(nil), path[i:]...))
						break
					}
				}
			}
		}
		path = path[:len(path)-1]
		state[c] = done
	}
	for _, c := range s.Containers {
		if state[c] == unvisited {
			visit(c)
		}
	}
	return cycles
}
