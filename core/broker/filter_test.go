package broker

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFilter(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Filter
		str  string // canonical String(); "" means in
	}{
		{"0x7DF", Single(0x7DF, false), ""},
		{"0x7df", Single(0x7DF, false), "0x7DF"},
		{"0X7DF", Single(0x7DF, false), "0x7DF"},
		{"  0x0  ", Single(0, false), "0x0"},
		{"0x7FF", Single(0x7FF, false), ""},
		{"0x800", Single(0x800, true), ""},
		{"0x123x", Single(0x123, true), ""},
		{"0x123X", Single(0x123, true), "0x123x"},
		{"0x1FFFFFFF", Single(0x1FFFFFFF, true), ""},
		{"0x100-0x1FF", Range(0x100, 0x1FF, false), ""},
		{"0x100 - 0x1FF", Range(0x100, 0x1FF, false), "0x100-0x1FF"},
		{"0x100-0x1FFx", Range(0x100, 0x1FF, true), ""},
		{"0x100x-0x1FF", Range(0x100, 0x1FF, true), "0x100-0x1FFx"},
		{"0x100-0x900x", Range(0x100, 0x900, true), ""},
		{"0x800-0x900", Range(0x800, 0x900, true), ""},
		{"0x18DA0000-0x18DAFFFF", Range(0x18DA0000, 0x18DAFFFF, true), ""},
		{"0x18DAF100/0x1FFFFF00", Mask(0x18DAF100, 0x1FFFFF00, true), ""},
		{"0x100/0x700", Mask(0x100, 0x700, false), ""},
		{"0x100 / 0x700x", Mask(0x100, 0x700, true), "0x100/0x700x"},
		{"0x0/0x0", Mask(0, 0, false), ""},
		{"*", AnyID(), ""},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseFilter(c.in)
			if err != nil {
				t.Fatalf("ParseFilter(%q): %v", c.in, err)
			}
			if got != c.want {
				t.Fatalf("ParseFilter(%q) = %+v, want %+v", c.in, got, c.want)
			}
			want := c.str
			if want == "" {
				want = c.in
			}
			if got.String() != want {
				t.Errorf("String() = %q, want %q", got.String(), want)
			}
			// The canonical form reads back as the same filter.
			again, err := ParseFilter(got.String())
			if err != nil || again != got {
				t.Errorf("ParseFilter(%q) = %+v, %v; want %+v", got.String(), again, err, got)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestParseFilterErrors(t *testing.T) {
	for _, c := range []struct {
		in, hint string // hint: what the message says to write
	}{
		{"", `write one ID ("0x7DF")`},
		{"   ", `write one ID ("0x7DF")`},
		{"123", `write "0x123"`},
		{"7df", `write "0x7DF"`},
		{"body", `"body" is not a CAN ID`},
		{"0x", `"0x" is not a CAN ID`},
		{"0xG1", `"0xG1" is not a CAN ID`},
		{"0x20000000", "above 0x1FFFFFFF"},
		{"0xFFFFFFFFFF", "above 0x1FFFFFFF"},
		{"0x1FF-0x100", `write "0x100-0x1FF"`},
		{"0x700-0x800", `write "0x700-0x7FF" for standard IDs or "0x700-0x800x" for extended ones`},
		{"0x100-", `two IDs around one "-"`},
		{"-0x100", `two IDs around one "-"`},
		{"0x1-0x2-0x3", `two IDs around one "-"`},
		{"0x100/", `two IDs around one "/"`},
		{"0x1/0x2/0x3", `two IDs around one "/"`},
		{"0x123/0x700", `write "0x100/0x700"`},
		{"0x18DAF1AB/0x1FFFFF00", `write "0x18DAF100/0x1FFFFF00"`},
	} {
		t.Run(c.in, func(t *testing.T) {
			f, err := ParseFilter(c.in)
			if err == nil {
				t.Fatalf("ParseFilter(%q) = %v, want an error", c.in, f)
			}
			if !errors.Is(err, ErrInvalidFilter) {
				t.Errorf("error %v does not wrap ErrInvalidFilter", err)
			}
			if !strings.Contains(err.Error(), c.hint) || !strings.Contains(err.Error(), `"`+c.in+`"`) {
				t.Errorf("error %q: want it to quote the input and say %q", err, c.hint)
			}
		})
	}
}

func TestParseFilters(t *testing.T) {
	fs, err := ParseFilters([]string{"0x100-0x1FF", "0x7DF", "0x18DAF100/0x1FFFFF00"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fs.String(), "0x100-0x1FF, 0x7DF, 0x18DAF100/0x1FFFFF00"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	_, err = ParseFilters([]string{"0x1", "12", "0x2", "0x3-0x1"})
	if !errors.Is(err, ErrInvalidFilter) || !strings.Contains(err.Error(), `"12"`) || !strings.Contains(err.Error(), `"0x3-0x1"`) {
		t.Errorf("ParseFilters with two bad filters: %v, want both named", err)
	}
	if got := (Filters{}).String(); got != "empty" {
		t.Errorf("empty list String() = %q", got)
	}
}

func TestFilterMatch(t *testing.T) {
	for _, c := range []struct {
		filter string
		id     uint32
		ext    bool
		want   bool
	}{
		{"0x7DF", 0x7DF, false, true},
		{"0x7DF", 0x7DE, false, false},
		{"0x7DF", 0x7DF, true, false}, // a standard filter never matches an extended frame
		{"0x7DFx", 0x7DF, true, true},
		{"0x7DFx", 0x7DF, false, false},
		{"0x100-0x1FF", 0x100, false, true},
		{"0x100-0x1FF", 0x1FF, false, true},
		{"0x100-0x1FF", 0x0FF, false, false},
		{"0x100-0x1FF", 0x200, false, false},
		{"0x100-0x1FF", 0x150, true, false},
		{"0x18DAF100/0x1FFFFF00", 0x18DAF100, true, true},
		{"0x18DAF100/0x1FFFFF00", 0x18DAF1FF, true, true},
		{"0x18DAF100/0x1FFFFF00", 0x18DAF200, true, false},
		{"0x18DAF100/0x1FFFFF00", 0x100, false, false},
		{"0x100/0x700", 0x1AB, false, true},
		{"0x100/0x700", 0x2AB, false, false},
		{"0x0/0x0", 0x7FF, false, true},
		{"0x0/0x0", 0x7FF, true, false},
		{"*", 0x1FFFFFFF, true, true},
		{"*", 0x0, false, true},
	} {
		f, err := ParseFilter(c.filter)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Match(c.id, c.ext); got != c.want {
			t.Errorf("%s.Match(0x%X, ext=%v) = %v, want %v", c.filter, c.id, c.ext, got, c.want)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	for _, f := range []Filter{
		Single(0x800, false),
		Range(0x200, 0x100, false),
		Range(0, 0x20000000, true),
		Mask(0x123, 0x700, false),
		Mask(0x800, 0x7FF, false),
		{Kind: 9},
	} {
		if err := f.Validate(); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidFilter", f, err)
		}
	}
}

func TestGrant(t *testing.T) {
	g := Grant{
		Name: "body", Device: "can0",
		Receive:  Filters{Range(0x100, 0x1FF, false), Single(0x7DF, false)},
		Send:     Filters{Single(0x7E0, false)},
		SendRate: Rate{PerSecond: 100},
		FD:       true,
	}
	want := `can "body" { bus = "can0", receive = ["0x100-0x1FF", "0x7DF"], send = ["0x7E0"], send_rate = 100, send_burst = 10, fd = true }`
	if got := g.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
	if err := g.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if got := (Rate{}).String(); got != "unlimited" {
		t.Errorf("zero rate: %q", got)
	}
	if got := (Rate{PerSecond: 2.5}).String(); got != "2.5 frames/s, burst 1" {
		t.Errorf("rate 2.5: %q", got)
	}
	for name, bad := range map[string]Grant{
		"no name":       {Device: "can0"},
		"no device":     {Name: "x"},
		"negative rate": {Name: "x", Device: "can0", SendRate: Rate{PerSecond: -1}},
		"bad burst":     {Name: "x", Device: "can0", SendRate: Rate{PerSecond: 1, Burst: -1}},
		"bad filter":    {Name: "x", Device: "can0", Send: Filters{Single(0x800, false)}},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("%s: Validate = %v, want ErrInvalidGrant", name, err)
		}
	}
}
