package network

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLinkNames(t *testing.T) {
	long := strings.Repeat("very-long-name-", 20)
	tests := []struct {
		name                      string
		stack, container, network string
	}{
		{"short", "s", "c", "n"},
		{"long", long + "stack", long + "container", long + "network"},
		{"unicode", "stäck", "cöntainer", "nétwork"},
		{"spaces", "my stack", "my container", "my network"},
	}
	const inst = "0123abcd"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := BridgeName(inst, tt.stack, tt.network)
			veth := VethName(inst, tt.stack, tt.container, tt.network)
			for _, n := range []string{br, veth} {
				if len(n) > maxIfName {
					t.Errorf("%q is %d characters, longer than %d", n, len(n), maxIfName)
				}
			}
			if !isBerthLink(br, bridgePrefix) || !isBerthLink(veth, vethPrefix) {
				t.Errorf("names %q, %q do not have berth's shape", br, veth)
			}
			if br != BridgeName(inst, tt.stack, tt.network) || veth != VethName(inst, tt.stack, tt.container, tt.network) {
				t.Error("names are not deterministic")
			}
			if VethName(inst, tt.stack, tt.container, tt.network+"x") == veth || BridgeName(inst, tt.stack+"x", tt.network) == br {
				t.Error("different inputs give the same name")
			}
			if BridgeName("other", tt.stack, tt.network) == br || VethName("other", tt.stack, tt.container, tt.network) == veth {
				t.Error("two instances give the same name")
			}
		})
	}
	// The separator keeps ("ab","c") and ("a","bc") apart.
	if BridgeName(inst, "ab", "c") == BridgeName(inst, "a", "bc") || BridgeName("i", "ab", "c") == BridgeName("ia", "b", "c") {
		t.Error("BridgeName is ambiguous across a part boundary")
	}
	if got := ContainerInterface(1); got != "eth1" {
		t.Errorf("ContainerInterface(1) = %q, want eth1", got)
	}
	mac := bridgeMAC(BridgeName(inst, "s", "n"))
	if mac[0]&0x01 != 0 || mac[0]&0x02 == 0 {
		t.Errorf("bridge MAC %s is not locally administered unicast", mac)
	}
}

func TestInstanceID(t *testing.T) {
	id, err := InstanceID("/var/lib/berth/networks")
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != instanceHexChars || CheckInstance(id) != nil {
		t.Errorf("InstanceID = %q, want %d hex characters", id, instanceHexChars)
	}
	same := []string{"/var/lib/berth/networks/", "/var/lib/berth/./x/../networks", "//var/lib/berth/networks"}
	for _, p := range same {
		if got, _ := InstanceID(p); got != id {
			t.Errorf("InstanceID(%q) = %q, want %q as for the cleaned path", p, got, id)
		}
	}
	if other, _ := InstanceID("/var/lib/berth2/networks"); other == id {
		t.Error("two state dirs give the same instance")
	}
	// A relative path is taken from the working directory.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := InstanceID("state")
	if abs, _ := InstanceID(filepath.Join(wd, "state")); rel != abs {
		t.Errorf("InstanceID(relative) = %q, want %q", rel, abs)
	}
}

func TestCheckInstance(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"0123abcd", true},
		{"test-A_1.b", true},
		{strings.Repeat("a", maxInstance), true},
		{"", false},
		{strings.Repeat("a", maxInstance+1), false},
		{"has space", false},
		{"nul\x00", false},
		{"colon:", false},
		{"ünï", false},
	}
	for _, tt := range tests {
		err := CheckInstance(tt.id)
		if tt.ok != (err == nil) {
			t.Errorf("CheckInstance(%q) = %v, want ok %v", tt.id, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("CheckInstance(%q) = %v, want ErrInvalidName", tt.id, err)
		}
		if err == nil && len(LinkMark(tt.id)) > 128 {
			t.Errorf("mark of %q is longer than the kernel's 128-byte alias limit", tt.id)
		}
	}
}

func TestHostname(t *testing.T) {
	tests := []struct{ in, want string }{
		{"db", "db"},
		{"Web_Server.1", "web-server-1"},
		{"--x--", "x"},
		{"", "container"},
		{"___", "container"},
		{"ünï", "n"},
		{strings.Repeat("a", 70), strings.Repeat("a", 63)},
		{strings.Repeat("a", 62) + "-b", strings.Repeat("a", 62)},
	}
	for _, tt := range tests {
		if got := Hostname(tt.in); got != tt.want {
			t.Errorf("Hostname(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHostsFile(t *testing.T) {
	const header = "# Written by berth; changes are lost when the container restarts.\n" +
		"127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n"
	a := netip.MustParseAddr
	tests := []struct {
		name    string
		self    string
		entries []HostEntry
		want    string
	}{
		{
			name: "no networks",
			self: "app",
			want: header + "127.0.1.1\tapp\n",
		},
		{
			name: "shared network, sorted, duplicates dropped",
			self: "app",
			entries: []HostEntry{
				{"db", a("10.89.0.3")},
				{"app", a("10.89.0.2")},
				{"db", a("10.89.0.3")},
				{"cache", a("10.89.1.7")},
				{"bad", netip.Addr{}},
			},
			want: header + "10.89.0.2\tapp\n10.89.1.7\tcache\n10.89.0.3\tdb\n",
		},
		{
			name:    "names are sanitised",
			self:    "My App",
			entries: []HostEntry{{"evil\n1.2.3.4 bank", a("10.89.0.9")}},
			want:    header + "127.0.1.1\tmy-app\n10.89.0.9\tevil-1-2-3-4-bank\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(HostsFile(tt.self, tt.entries)); got != tt.want {
				t.Errorf("HostsFile:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestSubnetMath(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		subnet      netip.Prefix
		gw, first   string
		n           uint64
		wantInvalid bool
	}{
		{subnet: p("10.89.0.0/24"), gw: "10.89.0.1", first: "10.89.0.2", n: 253},
		{subnet: p("192.168.4.0/30"), gw: "192.168.4.1", first: "192.168.4.2", n: 1},
		{subnet: p("10.0.0.0/16"), gw: "10.0.0.1", first: "10.0.0.2", n: 65533},
		{subnet: p("10.0.0.0/31"), wantInvalid: true},
		{subnet: p("fd00::/64"), wantInvalid: true},
	}
	for _, tt := range tests {
		err := checkSubnet(tt.subnet)
		if tt.wantInvalid {
			if err == nil {
				t.Errorf("checkSubnet(%s) accepted an invalid subnet", tt.subnet)
			}
			continue
		}
		if err != nil {
			t.Errorf("checkSubnet(%s): %v", tt.subnet, err)
			continue
		}
		first, n := hostRange(tt.subnet)
		if gateway(tt.subnet).String() != tt.gw || first.String() != tt.first || n != tt.n {
			t.Errorf("%s: gateway %s, first %s, n %d; want %s, %s, %d", tt.subnet, gateway(tt.subnet), first, n, tt.gw, tt.first, tt.n)
		}
	}

	var got []string
	poolSubnets(p("10.89.0.0/16"), 24, func(s netip.Prefix) bool {
		got = append(got, s.String())
		return len(got) < 3
	})
	if strings.Join(got, " ") != "10.89.0.0/24 10.89.1.0/24 10.89.2.0/24" {
		t.Errorf("poolSubnets = %v", got)
	}
}

func TestAllocate(t *testing.T) {
	st := &netState{Stack: "s", Name: "n", Subnet: netip.MustParsePrefix("10.1.0.0/29"), Addresses: map[string]netip.Addr{}}
	first, n := hostRange(st.Subnet) // 10.1.0.2 .. 10.1.0.6
	seen := map[netip.Addr]string{}
	for i := range n {
		c := string(rune('a' + i))
		addr, changed, err := st.allocate(c)
		if err != nil || !changed {
			t.Fatalf("allocate %s: %v, changed %v", c, err, changed)
		}
		if addr.Less(first) || !addr.Less(addrAdd(first, n)) {
			t.Fatalf("allocate %s = %s, outside %s..+%d", c, addr, first, n)
		}
		if other, dup := seen[addr]; dup {
			t.Fatalf("%s and %s both got %s", c, other, addr)
		}
		seen[addr] = c
	}
	if a, changed, err := st.allocate("a"); err != nil || changed || a != st.Addresses["a"] {
		t.Errorf("allocate again = %s, %v, %v; want the kept address", a, changed, err)
	}
	if _, _, err := st.allocate("one-too-many"); !errors.Is(err, ErrSubnetFull) {
		t.Errorf("allocate in a full subnet: %v, want ErrSubnetFull", err)
	}

	// Freed and asked again, a container gets its hashed address back.
	addr := st.Addresses["c"]
	delete(st.Addresses, "c")
	if again, _, _ := st.allocate("c"); again != addr {
		t.Errorf("after free, c got %s, want %s again", again, addr)
	}
}
