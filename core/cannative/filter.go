package cannative

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"

	"github.com/berth-io/berth/core/broker"
)

// Kernel CAN ID flags and masks (linux/can.h).
const (
	canEFFFlag = 0x80000000 // extended frame format
	canRTRFlag = 0x40000000 // remote transmission request
	canERRFlag = 0x20000000 // error frame
	canSFFMask = 0x000007FF
	canEFFMask = 0x1FFFFFFF
	canErrMask = 0x1FFFFFFF // error classes
)

// CANFilter is the kernel's struct can_filter as a can-gw rule applies it
// to a frame's can_id, flag bits included: a data or remote frame matches
// when can_id&Mask == ID&Mask. A filter whose Mask has the error flag
// (0x20000000) matches error frames instead, those with an error class in
// Mask. The filters [Compile] makes keep the RTR bit out of Mask, so
// remote frames pass like data frames, as in the broker.
type CANFilter struct{ ID, Mask uint32 }

// errorFilter selects every error frame.
var errorFilter = CANFilter{ID: canERRFlag, Mask: canERRFlag | canErrMask}

// Match reports whether a frame with the given can_id (flags included)
// passes the filter, as the kernel decides it.
func (f CANFilter) Match(canID uint32) bool {
	if canID&canERRFlag != 0 || f.Mask&canERRFlag != 0 {
		return canID&canERRFlag != 0 && f.Mask&canERRFlag != 0 && canID&f.Mask&canErrMask != 0
	}
	return canID&f.Mask == f.ID&f.Mask
}

// String returns the filter as cangw's -f option takes it: "ID:MASK" in hex.
func (f CANFilter) String() string { return fmt.Sprintf("%08X:%08X", f.ID, f.Mask) }

// Direction says which way a rule forwards frames.
type Direction uint8

// The directions of a rule.
const (
	// ToContainer forwards frames from the bus to the container's interface.
	ToContainer Direction = iota + 1
	// ToBus forwards frames the container sends to the bus.
	ToBus
)

func (d Direction) String() string {
	switch d {
	case ToContainer:
		return "bus->container"
	case ToBus:
		return "container->bus"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// Rule is one can-gw rule of a compiled grant, before it is bound to
// interfaces.
type Rule struct {
	Dir    Direction
	Filter CANFilter
	// FD makes the rule forward CAN FD frames; without it the rule
	// forwards classical frames only (can-gw handles one kind per rule).
	FD bool
}

func (r Rule) String() string {
	kind := "classical"
	if r.FD {
		kind = "fd"
	}
	return fmt.Sprintf("%s %s %s", r.Dir, r.Filter, kind)
}

// MaxRules bounds the can-gw rules one grant may compile to. Every rule is
// one more filter the kernel runs for each frame on the bus; a grant that
// needs more is served better by the broker.
const MaxRules = 256

// Compile turns a grant into can-gw rules: its receive filters into rules
// from the bus to the container, its send filters into rules from the
// container to the bus, and, with Grant.ErrorFrames, one rule that forwards
// the bus's error frames to the container. The filters of each direction
// are compiled into disjoint id/mask pairs (a range becomes the fewest
// aligned blocks that cover it exactly; overlapping filters are merged), so
// a frame crosses at most once whatever the grant's overlaps. When g.FD and
// busFD, every pair gets a classical and an FD rule; otherwise FD frames
// cross in neither direction, as in the broker.
//
// A grant with a send rate cannot be compiled (can-gw has no rate limit):
// the error wraps ErrNotNative. So does a grant needing more than MaxRules
// rules. A malformed grant's error wraps broker.ErrInvalidGrant.
func Compile(g broker.Grant, busFD bool) ([]Rule, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if !g.SendRate.Unlimited() {
		return nil, fmt.Errorf("grant %q sets send_rate (%s), which the native path cannot enforce (can-gw has no rate limit): drop send_rate or native = true, and the broker serves it: %w", g.Name, g.SendRate, ErrNotNative)
	}
	fd := g.FD && busFD
	var rules []Rule
	for _, dir := range []struct {
		d    Direction
		word string
		fs   broker.Filters
	}{{ToContainer, "receive", g.Receive}, {ToBus, "send", g.Send}} {
		fs, ok := disjoint(dir.fs, MaxRules)
		if !ok {
			return nil, fmt.Errorf("grant %q: its %s filters (%s) compile to more than %d can-gw rules: use fewer or wider filters (id/mask or aligned ranges), or drop native = true: %w", g.Name, dir.word, dir.fs, MaxRules, ErrNotNative)
		}
		for _, f := range fs {
			rules = append(rules, Rule{Dir: dir.d, Filter: f})
			if fd {
				rules = append(rules, Rule{Dir: dir.d, Filter: f, FD: true})
			}
		}
	}
	if g.ErrorFrames {
		rules = append(rules, Rule{Dir: ToContainer, Filter: errorFilter})
	}
	if len(rules) > MaxRules {
		return nil, fmt.Errorf("grant %q compiles to %d can-gw rules, more than %d: use fewer or wider filters (id/mask or aligned ranges), or drop native = true: %w", g.Name, len(rules), MaxRules, ErrNotNative)
	}
	return rules, nil
}

// kernelFilters returns a broker filter as kernel id/mask pairs: one for a
// mask or an ID, the exact cover for a range, one matching everything for
// KindAny.
func kernelFilters(f broker.Filter) []CANFilter {
	idMask, flag := uint32(canSFFMask), uint32(0)
	if f.Extended {
		idMask, flag = canEFFMask, canEFFFlag
	}
	switch f.Kind {
	case broker.KindAny:
		return []CANFilter{{}}
	case broker.KindMask:
		m := f.Mask&idMask | canEFFFlag
		return []CANFilter{{ID: (f.ID&idMask | flag) & m, Mask: m}}
	}
	bitsWide := uint(11)
	if f.Extended {
		bitsWide = 29
	}
	var out []CANFilter
	for _, b := range rangeMasks(f.Lo, f.Hi, bitsWide) {
		out = append(out, CANFilter{ID: b.ID | flag, Mask: b.Mask | canEFFFlag})
	}
	return out
}

// rangeMasks returns the id/mask pairs over the low width bits that match
// exactly the IDs lo through hi: the aligned power-of-two blocks of the
// range, the fewest that cover it (at most 2*width-2). lo > hi gives none.
func rangeMasks(lo, hi uint32, width uint) []CANFilter {
	full := uint64(1)<<width - 1
	var out []CANFilter
	for l, h := uint64(lo), uint64(hi); l <= h; {
		size := uint64(1)
		for size <= full && l&(2*size-1) == 0 && l+2*size-1 <= h {
			size *= 2
		}
		out = append(out, CANFilter{ID: uint32(l), Mask: uint32(full &^ (size - 1))})
		l += size
	}
	return out
}

// disjoint returns id/mask pairs matching exactly the IDs any of fs
// matches, no ID matched by two of them, in a stable order; ok is false
// when that takes more than limit pairs. The pairs are ternary patterns
// over the EFF flag and the 29 ID bits; overlaps are cut away by pattern
// subtraction, then neighbours merged.
func disjoint(fs broker.Filters, limit int) (_ []CANFilter, ok bool) {
	if slices.ContainsFunc(fs, func(f broker.Filter) bool { return f.Kind == broker.KindAny }) {
		return []CANFilter{{}}, true
	}
	var out []CANFilter
	for _, f := range fs {
		for _, p := range kernelFilters(f) {
			pieces := []CANFilter{p}
			for _, q := range out {
				var next []CANFilter
				for _, piece := range pieces {
					next = subtract(next, piece, q)
				}
				pieces = next
			}
			out = append(out, pieces...)
			// Merging rarely halves the count: stop before the work grows.
			if len(out) > 4*limit {
				return nil, false
			}
		}
	}
	out = merge(out)
	if len(out) > limit {
		return nil, false
	}
	slices.SortFunc(out, func(a, b CANFilter) int {
		return cmp.Or(cmp.Compare(a.ID&canEFFFlag, b.ID&canEFFFlag), cmp.Compare(a.ID, b.ID), cmp.Compare(b.Mask, a.Mask))
	})
	return out, true
}

// subtract appends to dst the pattern p minus the pattern q, as disjoint
// patterns: p itself when they do not meet, nothing when q covers p.
func subtract(dst []CANFilter, p, q CANFilter) []CANFilter {
	both := p.Mask & q.Mask
	if p.ID&both != q.ID&both {
		return append(dst, p)
	}
	// Fix, one by one, the bits q decides and p leaves free: with q's
	// opposite value the piece lies outside q; with q's value the rest
	// narrows towards q.
	free := q.Mask &^ p.Mask
	for free != 0 {
		bit := uint32(1) << (31 - bits.LeadingZeros32(free))
		free &^= bit
		out := CANFilter{ID: p.ID&^bit | ^q.ID&bit, Mask: p.Mask | bit}
		dst = append(dst, out)
		p = CANFilter{ID: p.ID&^bit | q.ID&bit, Mask: p.Mask | bit}
	}
	return dst
}

// merge joins pairs of disjoint patterns that differ in exactly one decided
// bit into one pattern leaving that bit free, until none is left.
func merge(ps []CANFilter) []CANFilter {
	for merged := true; merged; {
		merged = false
		for i := 0; i < len(ps) && !merged; i++ {
			for j := i + 1; j < len(ps); j++ {
				a, b := ps[i], ps[j]
				diff := (a.ID ^ b.ID) & a.Mask
				if a.Mask != b.Mask || bits.OnesCount32(diff) != 1 {
					continue
				}
				ps[i] = CANFilter{ID: a.ID &^ diff, Mask: a.Mask &^ diff}
				ps = slices.Delete(ps, j, j+1)
				merged = true
				break
			}
		}
	}
	return ps
}
