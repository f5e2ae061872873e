package playbook

import (
	"errors"
	"math"
	"math/big"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/berth-io/berth/core/broker"
	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

// maxIfName is the longest Linux interface name (IFNAMSIZ - 1): a native
// grant's interface in the container is named after the grant.
const maxIfName = 15

// filterForms is the sentence listing the filter syntax broker.ParseFilter
// accepts, for the fix of a bad filter.
const filterForms = `A filter is one ID ("0x7DF"), a range ("0x100-0x1FF"), id/mask ("0x18DAF100/0x1FFFFF00") or "*" for every ID; ` +
	`IDs are hexadecimal with a 0x prefix, and an x suffix ("0x123x") makes an ID of 0x7FF or below extended.`

// grant decodes one device grant block. seen maps the grant names of the
// container decoded so far to their blocks; ok is false when the grant is
// a duplicate and must not be kept.
func (d *decoder) grant(blk *hclschemas.BlockNode, seen map[string]hcl.Range) (g Grant, ok bool) {
	g = Grant{Class: blk.Type, Name: blk.Labels[0], BusRange: blk.DefRange, DeclRange: blk.DefRange}
	d.checkNameFor("grant", "the container opens the grant by its name, and a native grant's interface takes it", g.Name, blk.LabelRanges[0])
	if prev, dup := seen[g.Name]; dup {
		d.errorf(blk.LabelRanges[0], "Duplicate grant",
			"This container already has a grant named %q at %s; grant names are unique within a container, so rename or remove one of them.", g.Name, prev)
		return g, false
	}
	seen[g.Name] = blk.DefRange
	if g.Class != "can" {
		d.errorf(blk.DefRange, "Device grants are not yet supported",
			"The %s grant %q is reserved for the device broker, which serves only CAN grants so far; remove it for now.", g.Class, g.Name)
		return g, true
	}
	d.canGrant(&g, blk)
	return g, true
}

// canGrant decodes the body of a `can` grant block into g.
func (d *decoder) canGrant(g *Grant, blk *hclschemas.BlockNode) {
	body := blk.Content
	before := len(d.diags)
	cg := &broker.Grant{Name: g.Name}
	g.CAN = cg

	bus, busAttr := d.str(body, "bus", "")
	switch {
	case busAttr == nil:
		d.explainMissing(body, "bus", `Name the board's CAN device the grant is on, such as bus = "can0".`)
	case !hclschemas.NamePattern.MatchString(bus):
		g.BusRange = busAttr.Range
		d.errorf(busAttr.Range, "Invalid bus",
			"bus %q cannot be a board device: device names are 1 to 63 lower-case letters, digits, '_', '.' or '-', starting with a letter or digit; name the board's CAN device, such as %q.",
			bus, hclschemas.SuggestName(bus, "can0"))
	default:
		g.BusRange = busAttr.Range
		cg.Device = bus
	}
	cg.Receive = d.filters(body, "receive")
	cg.Send = d.filters(body, "send")
	cg.SendRate = d.sendRate(body)
	cg.FD = d.boolean(body, "fd", false)
	cg.ErrorFrames = d.boolean(body, "error_frames", false)
	g.Native = d.boolean(body, "native", false)
	if g.Native && len(g.Name) > maxIfName {
		d.errorf(blk.LabelRanges[0], "Grant name too long for an interface",
			"A native grant gives the container a CAN interface named after the grant, and interface names have at most %d characters; shorten %q or remove native.",
			maxIfName, g.Name)
	}
	if len(d.diags) > before || cg.Device == "" {
		return
	}
	if err := cg.Validate(); err != nil {
		d.errorf(blk.DefRange, "Invalid CAN grant", "%v; fix the grant.", err)
		return
	}
	if !written(blk.Body, "receive", "send", "error_frames") {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Grant allows nothing",
			Detail: `The CAN grant "` + g.Name + `" receives and sends no frames; list the IDs the container needs in receive or send, ` +
				`such as receive = ["0x100-0x1FF"], or remove the grant.`,
			Subject: blk.DefRange.Ptr(),
		})
	}
}

// filters reads a list of CAN ID filters, reporting each bad one at its
// own element.
func (d *decoder) filters(body *hclschemas.Content, name string) broker.Filters {
	ss, ranges, _ := d.strList(body, name)
	var fs broker.Filters
	for i, s := range ss {
		f, err := broker.ParseFilter(s)
		if err != nil {
			d.errorf(ranges[i], "Invalid CAN filter", "%s filter %q: %s. %s", name, s, filterReason(err), filterForms)
			continue
		}
		fs = append(fs, f)
	}
	return fs
}

// filterReason is what ParseFilter's error says about the filter, without
// the prefix naming the filter and the sentinel.
func filterReason(err error) string {
	msg := err.Error()
	if errors.Is(err, broker.ErrInvalidFilter) {
		if _, after, ok := strings.Cut(msg, broker.ErrInvalidFilter.Error()+": "); ok {
			return after
		}
	}
	return msg
}

// sendRate reads send_rate and send_burst.
func (d *decoder) sendRate(body *hclschemas.Content) broker.Rate {
	var r broker.Rate
	rate := body.Attr("send_rate")
	rateBad := false
	if rate != nil {
		bf := rate.Value.AsBigFloat()
		f, _ := bf.Float64()
		if rateBad = bf.Sign() < 0 || math.IsInf(f, 0) || (f == 0 && bf.Sign() != 0); rateBad {
			d.errorf(rate.Range, "Invalid send_rate",
				"send_rate is %s; write the frames a second the container may send, such as 100 or 0.5, or 0 (or leave it out) for no limit.",
				bf.Text('g', 10))
		} else {
			r.PerSecond = f
		}
	}
	burst := body.Attr("send_burst")
	if burst == nil {
		return r
	}
	bf := burst.Value.AsBigFloat()
	i, acc := bf.Int64()
	switch {
	case !bf.IsInt() || acc != big.Exact || i < 0 || i > math.MaxInt32:
		d.errorf(burst.Range, "Invalid send_burst",
			"send_burst is %s; write how many frames may go back to back as a whole number, such as 10, or leave it out for a tenth of a second's worth.",
			bf.Text('g', 10))
	case rate == nil:
		d.errorf(burst.Range, "send_burst without send_rate",
			"send_burst shapes a send_rate, and this grant sets none, so its sends are unlimited; set send_rate, such as send_rate = 100, or remove send_burst.")
	case rateBad:
	case r.Unlimited():
		d.errorf(burst.Range, "send_burst without send_rate",
			"send_burst shapes a send_rate, and send_rate = 0 means no limit; set send_rate above 0, such as send_rate = 100, or remove send_burst.")
	default:
		r.Burst = int(i)
	}
	return r
}

// written reports whether body sets any of the attributes names, whatever
// their values (a value that failed to decode is already reported).
func written(body hcl.Body, names ...string) bool {
	attrs, _ := body.JustAttributes()
	for _, n := range names {
		if attrs[n] != nil {
			return true
		}
	}
	return false
}

// explainMissing adds fix to the schema decoder's "Missing required
// argument" diagnostic about the attribute name of body, which says only
// that it is missing.
func (d *decoder) explainMissing(body *hclschemas.Content, name, fix string) {
	for _, diag := range d.diags {
		if diag.Summary == "Missing required argument" && diag.Subject != nil && *diag.Subject == body.MissingItemRange &&
			strings.Contains(diag.Detail, `"`+name+`"`) {
			diag.Detail += " " + fix
		}
	}
}
