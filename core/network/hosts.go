package network

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// HostEntry is one line of a container's /etc/hosts: a container's name and
// its address on a network it shares with the file's owner.
type HostEntry struct {
	Name string
	Addr netip.Addr
}

// HostsFile returns the content of /etc/hosts for the container named self:
// the localhost lines, then one line per entry ("10.89.0.3\tdb"), sorted by
// name and address with duplicates dropped. Names pass through [Hostname],
// so no entry can break the file's syntax; entries with an invalid address
// are left out. If no entry names self, self is mapped to 127.0.1.1 so the
// container's own host name resolves. The caller writes the file.
func HostsFile(self string, entries []HostEntry) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by berth; changes are lost when the container restarts.\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")

	selfName := Hostname(self)
	lines := make([]HostEntry, 0, len(entries))
	for _, e := range entries {
		if !e.Addr.IsValid() {
			continue
		}
		lines = append(lines, HostEntry{Name: Hostname(e.Name), Addr: e.Addr.Unmap()})
	}
	slices.SortFunc(lines, func(a, b HostEntry) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return a.Addr.Compare(b.Addr)
	})
	lines = slices.Compact(lines)
	if !slices.ContainsFunc(lines, func(e HostEntry) bool { return e.Name == selfName }) {
		fmt.Fprintf(&b, "127.0.1.1\t%s\n", selfName)
	}
	for _, e := range lines {
		fmt.Fprintf(&b, "%s\t%s\n", e.Addr, e.Name)
	}
	return b.Bytes()
}
