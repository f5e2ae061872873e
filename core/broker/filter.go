package broker

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/berth-io/berth/devices/can"
)

// FilterKind says how a [Filter] matches IDs.
type FilterKind uint8

// The kinds of filter.
const (
	// KindRange matches the IDs Lo through Hi (one ID when Lo == Hi).
	KindRange FilterKind = iota
	// KindMask matches an ID when ID&Mask == Filter.ID&Mask, as a
	// SocketCAN can_filter does.
	KindMask
	// KindAny matches every ID, standard and extended.
	KindAny
)

// Filter selects CAN IDs of one format (11-bit standard or 29-bit
// extended), except [KindAny], which selects all. It is what a grant's
// receive and send lists hold; write one as a string and read it with
// [ParseFilter]:
//
//	"0x7DF"                   one standard ID
//	"0x100-0x1FF"             standard IDs 0x100 through 0x1FF
//	"0x18DAF100/0x1FFFFF00"   id/mask: extended IDs 0x18DAF100-0x18DAF1FF
//	"0x123x", "0x100-0x1FFx"  the x suffix makes small values extended
//	"*"                       every ID, standard and extended
//
// IDs are hexadecimal with a 0x prefix, as candump prints them. A filter
// is extended when it carries the x suffix or any number in it is above
// 0x7FF; otherwise it is standard and never matches an extended frame.
type Filter struct {
	Kind     FilterKind
	Extended bool
	// Lo and Hi bound a KindRange filter, inclusive.
	Lo, Hi uint32
	// ID and Mask are a KindMask filter.
	ID, Mask uint32
}

// Single returns a filter matching the one ID id.
func Single(id uint32, extended bool) Filter {
	return Filter{Kind: KindRange, Extended: extended, Lo: id, Hi: id}
}

// Range returns a filter matching IDs lo through hi.
func Range(lo, hi uint32, extended bool) Filter {
	return Filter{Kind: KindRange, Extended: extended, Lo: lo, Hi: hi}
}

// Mask returns a filter matching IDs whose bits under mask equal id's.
func Mask(id, mask uint32, extended bool) Filter {
	return Filter{Kind: KindMask, Extended: extended, ID: id, Mask: mask}
}

// AnyID returns a filter matching every ID.
func AnyID() Filter { return Filter{Kind: KindAny} }

// Match reports whether the filter selects id in the given format.
func (f Filter) Match(id uint32, extended bool) bool {
	switch {
	case f.Kind == KindAny:
		return true
	case extended != f.Extended:
		return false
	case f.Kind == KindMask:
		return id&f.Mask == f.ID&f.Mask
	}
	return f.Lo <= id && id <= f.Hi
}

// Validate checks a filter built in code the way [ParseFilter] checks a
// written one; the error wraps [ErrInvalidFilter].
func (f Filter) Validate() error {
	limit := uint32(can.MaxID)
	if f.Extended {
		limit = can.MaxExtendedID
	}
	switch f.Kind {
	case KindAny:
		return nil
	case KindRange:
		if f.Hi > limit {
			return fmt.Errorf("filter %s: %w: 0x%X is above 0x%X, the largest %s ID", f, ErrInvalidFilter, f.Hi, limit, format(f.Extended))
		}
		if f.Lo > f.Hi {
			return fmt.Errorf("filter %s: %w: the range starts after it ends", f, ErrInvalidFilter)
		}
	case KindMask:
		if f.ID > limit || f.Mask > limit {
			return fmt.Errorf("filter %s: %w: id or mask is above 0x%X, the largest %s ID", f, ErrInvalidFilter, limit, format(f.Extended))
		}
		if f.ID&^f.Mask != 0 {
			return fmt.Errorf("filter %s: %w: the id has bits the mask ignores", f, ErrInvalidFilter)
		}
	default:
		return fmt.Errorf("filter: %w: unknown kind %d", ErrInvalidFilter, f.Kind)
	}
	return nil
}

// String returns the filter as [ParseFilter] reads it, in canonical form:
// upper-case hex digits, and the x suffix on an extended filter only where
// a number in it would read as standard (a range's start, or an id/mask
// with neither above 0x7FF).
func (f Filter) String() string {
	suffix := ""
	switch f.Kind {
	case KindAny:
		return "*"
	case KindMask:
		if f.Extended && f.ID <= can.MaxID && f.Mask <= can.MaxID {
			suffix = "x"
		}
		return fmt.Sprintf("0x%X/0x%X%s", f.ID, f.Mask, suffix)
	}
	if f.Extended && f.Lo <= can.MaxID {
		suffix = "x"
	}
	if f.Lo == f.Hi {
		return fmt.Sprintf("0x%X%s", f.Lo, suffix)
	}
	return fmt.Sprintf("0x%X-0x%X%s", f.Lo, f.Hi, suffix)
}

// formatID writes one ID as a filter would: "0x321", "0x18DAF100", and
// "0x123x" for an extended ID that would read as standard.
func formatID(id uint32, extended bool) string {
	return Single(id, extended).String()
}

func format(extended bool) string {
	if extended {
		return "extended (29-bit)"
	}
	return "standard (11-bit)"
}

// Filters is a grant's receive or send list: an ID passes when any filter
// matches it. An empty list matches nothing.
type Filters []Filter

// Match reports whether any filter selects id in the given format.
func (fs Filters) Match(id uint32, extended bool) bool {
	for _, f := range fs {
		if f.Match(id, extended) {
			return true
		}
	}
	return false
}

// String joins the filters with ", "; an empty list is "empty".
func (fs Filters) String() string {
	if len(fs) == 0 {
		return "empty"
	}
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return strings.Join(parts, ", ")
}

// ParseFilters parses each string with [ParseFilter]; the error joins the
// errors of every bad one.
func ParseFilters(ss []string) (Filters, error) {
	fs := make(Filters, 0, len(ss))
	var errs []error
	for _, s := range ss {
		f, err := ParseFilter(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fs = append(fs, f)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return fs, nil
}

// ParseFilter reads a filter as a user writes it in a playbook; see
// [Filter] for the syntax. Spaces around the text and around "-" and "/"
// are ignored. The error wraps [ErrInvalidFilter] and says what to write
// instead.
func ParseFilter(s string) (Filter, error) {
	fail := func(format string, args ...any) (Filter, error) {
		return Filter{}, fmt.Errorf("parse CAN filter %q: %w: %s", s, ErrInvalidFilter, fmt.Sprintf(format, args...))
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return fail(`it is empty: write one ID ("0x7DF"), a range ("0x100-0x1FF"), id/mask ("0x18DAF100/0x1FFFFF00") or "*"`)
	}
	if t == "*" {
		return AnyID(), nil
	}
	sep, kind := "", KindRange
	switch {
	case strings.Contains(t, "/"):
		sep, kind = "/", KindMask
	case strings.Contains(t, "-"):
		sep = "-"
	}
	parts := []string{t}
	if sep != "" {
		parts = strings.Split(t, sep)
		if len(parts) != 2 || strings.TrimSpace(parts[0]) == "" || strings.TrimSpace(parts[1]) == "" {
			if kind == KindMask {
				return fail(`an id/mask filter is two IDs around one "/", e.g. "0x18DAF100/0x1FFFFF00"`)
			}
			return fail(`a range is two IDs around one "-", e.g. "0x100-0x1FF"`)
		}
	}
	vals := make([]uint32, len(parts))
	ext, suffix := false, false
	for i, p := range parts {
		v, x, msg := parseID(strings.TrimSpace(p))
		if msg != "" {
			return fail("%s", msg)
		}
		vals[i], suffix, ext = v, suffix || x, ext || x || v > can.MaxID
	}
	switch {
	case len(vals) == 1:
		return Single(vals[0], ext), nil
	case kind == KindMask:
		id, mask := vals[0], vals[1]
		if id&^mask != 0 {
			return fail("id 0x%X has bits the mask 0x%X ignores: write %q", id, mask, Mask(id&mask, mask, ext).String())
		}
		return Mask(id, mask, ext), nil
	}
	lo, hi := vals[0], vals[1]
	if lo > hi {
		return fail("the range starts after it ends: write %q", Range(hi, lo, ext).String())
	}
	if !suffix && lo <= can.MaxID && hi > can.MaxID {
		return fail("the range runs past 0x7FF, the last standard ID: write %q for standard IDs or %q for extended ones",
			Range(lo, can.MaxID, false).String(), Range(lo, hi, true).String())
	}
	return Range(lo, hi, ext), nil
}

// parseID reads one ID: "0x7DF", or with the x suffix ("0x123x") that
// makes it extended. On error it returns a message saying what to write.
func parseID(p string) (id uint32, x bool, msg string) {
	l := strings.ToLower(p)
	if len(l) > 2 && strings.HasSuffix(l, "x") {
		x, l = true, l[:len(l)-1]
	}
	if !strings.HasPrefix(l, "0x") {
		if _, err := strconv.ParseUint(l, 16, 32); err == nil {
			return 0, false, fmt.Sprintf("CAN IDs are hexadecimal with a 0x prefix, as candump prints them: write %q", "0x"+strings.ToUpper(l))
		}
		return 0, false, fmt.Sprintf("%q is not a CAN ID: write a hexadecimal number with a 0x prefix, like \"0x7DF\"", p)
	}
	v, err := strconv.ParseUint(l[2:], 16, 64)
	if err != nil {
		return 0, false, fmt.Sprintf("%q is not a CAN ID: write a hexadecimal number with a 0x prefix, like \"0x7DF\"", p)
	}
	if v > can.MaxExtendedID {
		return 0, false, fmt.Sprintf("%s is above 0x1FFFFFFF, the largest extended (29-bit) ID", p)
	}
	return uint32(v), x, ""
}
