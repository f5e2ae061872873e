package hil

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/ulikunitz/xz"
)

func TestModuleName(t *testing.T) {
	tests := map[string]string{
		"lib/modules/6.1.0-56-amd64/kernel/net/can/can-raw.ko":   "can_raw",
		"usr/lib/modules/6.12.1/kernel/net/can/can-gw.ko.xz":     "can_gw",
		"lib/modules/6.1.0-56-amd64/kernel/drivers/i2c/i2c_x.ko": "i2c_x",
	}
	for in, want := range tests {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseModule(t *testing.T) {
	obj := fakeELF("license=GPL\x00alias=rtnl-link-vcan\x00depends=can-dev,llc\x00\x00\x00name=vcan\x00", false)
	var xzObj bytes.Buffer
	w, err := xz.NewWriter(&xzObj)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(obj); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file string
		data []byte
	}{
		{"kernel/drivers/net/can/vcan.ko", obj},
		{"kernel/drivers/net/can/vcan.ko.xz", xzObj.Bytes()},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			m, err := ParseModule(tc.file, tc.data)
			if err != nil {
				t.Fatalf("ParseModule: %v", err)
			}
			if m.Name != "vcan" || m.Path != tc.file || !slices.Equal(m.Depends, []string{"can_dev", "llc"}) {
				t.Errorf("ParseModule = %+v", m)
			}
		})
	}
}

func TestReadModinfoRepeatedAndEmpty(t *testing.T) {
	info, err := ReadModinfo(fakeELF("alias=a\x00alias=b\x00depends=\x00", false))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info["alias"], []string{"a", "b"}) || !slices.Equal(info["depends"], []string{""}) {
		t.Errorf("ReadModinfo = %v", info)
	}
	m, err := ParseModule("x.ko", fakeELF("depends=\x00", false))
	if err != nil || len(m.Depends) != 0 {
		t.Errorf("empty depends: %+v, %v", m, err)
	}
	if _, err := ReadModinfo([]byte("not an elf")); err == nil {
		t.Error("ReadModinfo accepted a non-ELF input")
	}
}

func TestLoadOrder(t *testing.T) {
	index := map[string]Module{
		"can":     {Name: "can"},
		"can_raw": {Name: "can_raw", Depends: []string{"can"}},
		"can_dev": {Name: "can_dev"},
		"vcan":    {Name: "vcan", Depends: []string{"can_dev"}},
		"bridge":  {Name: "bridge", Depends: []string{"llc", "stp"}},
		"stp":     {Name: "stp", Depends: []string{"llc"}},
		"llc":     {Name: "llc"},
		"orphan":  {Name: "orphan", Depends: []string{"gone"}},
		"loop_a":  {Name: "loop_a", Depends: []string{"loop_b"}},
		"loop_b":  {Name: "loop_b", Depends: []string{"loop_a"}},
	}
	tests := []struct {
		name    string
		wanted  []string
		want    []string
		wantErr error
	}{
		{"chain", []string{"can-raw"}, []string{"can", "can_raw"}, nil},
		{"shared dependency loaded once", []string{"vcan", "can_raw", "can", "can_dev"}, []string{"can_dev", "vcan", "can", "can_raw"}, nil},
		{"diamond", []string{"bridge"}, []string{"llc", "stp", "bridge"}, nil},
		{"missing wanted", []string{"nope"}, nil, ErrModuleNotFound},
		{"missing dependency", []string{"orphan"}, nil, ErrModuleNotFound},
		{"cycle", []string{"loop_a"}, nil, ErrModuleCycle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			order, err := LoadOrder(index, tc.wanted)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("LoadOrder err = %v, want %v", err, tc.wantErr)
			}
			var got []string
			for _, m := range order {
				got = append(got, m.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("LoadOrder = %v, want %v", got, tc.want)
			}
		})
	}
}
