package cannative

import (
	"errors"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/berth-io/berth/core/broker"
)

// TestRangeMasksExhaustive checks every range of an 8-bit ID space: the
// pairs match exactly the IDs of the range, none twice, and there are no
// more than 2*8-2 of them.
func TestRangeMasksExhaustive(t *testing.T) {
	const width = 8
	for lo := uint32(0); lo < 1<<width; lo++ {
		for hi := lo; hi < 1<<width; hi++ {
			ms := rangeMasks(lo, hi, width)
			if max := 2*width - 2; len(ms) > max {
				t.Fatalf("%#x-%#x: %d pairs, want at most %d", lo, hi, len(ms), max)
			}
			for id := uint32(0); id < 1<<width; id++ {
				n := 0
				for _, m := range ms {
					if id&m.Mask == m.ID {
						n++
					}
				}
				want := 0
				if lo <= id && id <= hi {
					want = 1
				}
				if n != want {
					t.Fatalf("%#x-%#x: ID %#x matched by %d of %v, want %d", lo, hi, id, n, ms, want)
				}
			}
		}
	}
}

func TestRangeMasksKnown(t *testing.T) {
	tests := []struct {
		lo, hi uint32
		width  uint
		want   []CANFilter
	}{
		{0x100, 0x1FF, 11, []CANFilter{{0x100, 0x700}}},
		{0x7DF, 0x7DF, 11, []CANFilter{{0x7DF, 0x7FF}}},
		{0, 0x7FF, 11, []CANFilter{{0, 0}}},
		{0x100, 0x17F, 11, []CANFilter{{0x100, 0x780}}},
		{0x101, 0x104, 11, []CANFilter{{0x101, 0x7FF}, {0x102, 0x7FE}, {0x104, 0x7FF}}},
		{0, 0x1FFFFFFF, 29, []CANFilter{{0, 0}}},
		{0x18DAF100, 0x18DAF1FF, 29, []CANFilter{{0x18DAF100, 0x1FFFFF00}}},
		{0x1FFFFFFE, 0x1FFFFFFF, 29, []CANFilter{{0x1FFFFFFE, 0x1FFFFFFE}}},
	}
	for _, tt := range tests {
		got := rangeMasks(tt.lo, tt.hi, tt.width)
		if !slices.Equal(got, tt.want) {
			t.Errorf("rangeMasks(%#x, %#x, %d) = %v, want %v", tt.lo, tt.hi, tt.width, got, tt.want)
		}
	}
}

// canID is a frame's can_id as the kernel sees it.
func canID(id uint32, extended, remote bool) uint32 {
	if extended {
		id |= canEFFFlag
	}
	if remote {
		id |= canRTRFlag
	}
	return id
}

// checkExactlyOnce asserts that, for every standard ID and a sample of
// extended ones, data and remote frames match exactly one of fs when the
// broker's filters match the ID, and none otherwise.
func checkExactlyOnce(t *testing.T, grant broker.Filters, fs []CANFilter, extIDs []uint32) {
	t.Helper()
	check := func(id uint32, ext bool) {
		for _, remote := range []bool{false, true} {
			n := 0
			for _, f := range fs {
				if f.Match(canID(id, ext, remote)) {
					n++
				}
			}
			want := 0
			if grant.Match(id, ext) {
				want = 1
			}
			if n != want {
				t.Fatalf("filters %s compiled to %v: ID %#x (extended %v, remote %v) matched %d times, want %d", grant, fs, id, ext, remote, n, want)
			}
		}
	}
	for id := uint32(0); id <= canSFFMask; id++ {
		check(id, false)
	}
	for _, id := range extIDs {
		check(id, true)
	}
}

// extSample returns extended IDs around the edges of fs and at random.
func extSample(r *rand.Rand, fs broker.Filters) []uint32 {
	ids := []uint32{0, 1, 0x7FF, 0x800, canEFFMask}
	for _, f := range fs {
		for _, id := range []uint32{f.Lo, f.Hi, f.ID} {
			for d := uint32(0); d < 3; d++ {
				ids = append(ids, (id+d)&canEFFMask, (id-d)&canEFFMask)
			}
		}
	}
	for range 2000 {
		ids = append(ids, r.Uint32()&canEFFMask)
	}
	return ids
}

func TestDisjointGrants(t *testing.T) {
	tests := [][]string{
		{"0x100-0x1FF"},
		{"0x100-0x1FF", "0x7DF"},
		{"0x100-0x1FF", "0x123", "0x180-0x2FF"}, // overlaps
		{"0x7E0/0x7F0", "0x7E8"},
		{"0x000-0x7FF"},
		{"0x18DAF100/0x1FFFFF00", "0x18DAF1F1x"},
		{"0x100-0x1FFx", "0x100-0x1FF"}, // same numbers, both formats
		{"0x12345-0x23456"},
		{"0x0/0x0"},                       // every standard ID
		{"0x0x/0x0x"},                     // every extended ID
		{"0x1/0x1", "0x2/0x2", "0x4/0x4"}, // masks that are no ranges
		{"*", "0x123"},
		{},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, tt := range tests {
		fs, err := broker.ParseFilters(tt)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := disjoint(fs, MaxRules)
		if !ok {
			t.Fatalf("%s: over %d rules", fs, MaxRules)
		}
		t.Logf("%s -> %v", fs, got)
		checkExactlyOnce(t, fs, got, extSample(r, fs))
	}
}

// TestDisjointRandom compiles random mixes of ranges, masks and IDs and
// checks each standard ID and a sample of extended ones.
func TestDisjointRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 200 {
		var fs broker.Filters
		for range 1 + r.IntN(5) {
			ext := r.IntN(4) == 0
			space := uint32(canSFFMask)
			if ext {
				space = canEFFMask
			}
			switch r.IntN(3) {
			case 0:
				a, b := r.Uint32()&space, r.Uint32()&space
				if ext {
					b = a + r.Uint32N(0x10000)&space // a range of useful size
					if b > space || b < a {
						b = space
					}
				}
				fs = append(fs, broker.Range(min(a, b), max(a, b), ext))
			case 1:
				fs = append(fs, broker.Mask(r.Uint32()&space, r.Uint32()&space, ext))
			default:
				fs = append(fs, broker.Single(r.Uint32()&space, ext))
			}
		}
		got, ok := disjoint(fs, 4096)
		if !ok {
			t.Fatalf("case %d: %s: too many rules", i, fs)
		}
		checkExactlyOnce(t, fs, got, extSample(r, fs))
	}
}

func TestCompile(t *testing.T) {
	recv, _ := broker.ParseFilters([]string{"0x100-0x1FF", "0x7DF"})
	send, _ := broker.ParseFilters([]string{"0x7E0"})
	g := broker.Grant{Name: "body", Device: "can0", Receive: recv, Send: send}

	rules, err := Compile(g, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{ToContainer, CANFilter{0x100, canEFFFlag | 0x700}, false},
		{ToContainer, CANFilter{0x7DF, canEFFFlag | 0x7FF}, false},
		{ToBus, CANFilter{0x7E0, canEFFFlag | 0x7FF}, false},
	}
	if !slices.Equal(rules, want) {
		t.Errorf("classical grant on an FD bus compiled to %v, want %v", rules, want)
	}

	g.FD, g.ErrorFrames = true, true
	rules, err = Compile(g, true)
	if err != nil {
		t.Fatal(err)
	}
	want = []Rule{
		{ToContainer, CANFilter{0x100, canEFFFlag | 0x700}, false},
		{ToContainer, CANFilter{0x100, canEFFFlag | 0x700}, true},
		{ToContainer, CANFilter{0x7DF, canEFFFlag | 0x7FF}, false},
		{ToContainer, CANFilter{0x7DF, canEFFFlag | 0x7FF}, true},
		{ToBus, CANFilter{0x7E0, canEFFFlag | 0x7FF}, false},
		{ToBus, CANFilter{0x7E0, canEFFFlag | 0x7FF}, true},
		{ToContainer, errorFilter, false},
	}
	if !slices.Equal(rules, want) {
		t.Errorf("FD grant with error frames compiled to %v, want %v", rules, want)
	}

	rules, err = Compile(g, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.FD {
			t.Errorf("FD grant on a classical bus compiled to FD rule %v", r)
		}
	}
}

func TestCompileRefuses(t *testing.T) {
	send, _ := broker.ParseFilters([]string{"0x7E0"})
	// 300 IDs of even parity: any two differ in two bits or more, so no
	// two merge into one id/mask pair.
	var many broker.Filters
	for id := uint32(0); len(many) < 300; id++ {
		if bits.OnesCount32(id)%2 == 0 {
			many = append(many, broker.Single(id, false))
		}
	}
	tests := []struct {
		name string
		g    broker.Grant
		want error
		text string
	}{
		{"send rate", broker.Grant{Name: "body", Device: "can0", Send: send, SendRate: broker.Rate{PerSecond: 100}}, ErrNotNative, `grant "body" sets send_rate`},
		{"too many rules", broker.Grant{Name: "diag", Device: "can0", Receive: many}, ErrNotNative, `grant "diag": its receive filters`},
		{"no name", broker.Grant{Device: "can0"}, broker.ErrInvalidGrant, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.g, false)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Compile: %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not say %q", err, tt.text)
			}
		})
	}
}

func TestCANFilterMatch(t *testing.T) {
	tests := []struct {
		f     CANFilter
		canID uint32
		want  bool
	}{
		{CANFilter{0x123, canEFFFlag | 0x7FF}, 0x123, true},
		{CANFilter{0x123, canEFFFlag | 0x7FF}, 0x123 | canRTRFlag, true},
		{CANFilter{0x123, canEFFFlag | 0x7FF}, 0x123 | canEFFFlag, false},
		{CANFilter{}, 0x1ABCDEF | canEFFFlag, true},
		{CANFilter{}, canERRFlag | 0x40, false}, // error frames only reach error filters
		{errorFilter, canERRFlag | 0x40, true},
		{errorFilter, 0x40, false},
	}
	for _, tt := range tests {
		if got := tt.f.Match(tt.canID); got != tt.want {
			t.Errorf("%v.Match(%#x) = %v, want %v", tt.f, tt.canID, got, tt.want)
		}
	}
}
