package network

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Link name prefixes. Every link berth makes in the host namespace starts
// with one of them, so Cleanup can tell berth's links from everyone else's.
const (
	bridgePrefix = "bb-"
	vethPrefix   = "bv-"
	hashChars    = 10 // hex characters of SHA-256 after the prefix
)

// maxIfName is the longest interface name Linux accepts (IFNAMSIZ - 1).
const maxIfName = 15

// BridgeName returns the host bridge name for network of stack: "bb-" and
// ten hex characters of a hash, 13 characters whatever the input.
func BridgeName(stack, network string) string {
	return bridgePrefix + hashName(stack, network)
}

// VethName returns the host-side veth name for container of stack on
// network: "bv-" and ten hex characters of a hash, 13 characters. It is a
// pure function so berthd can find a container's links after a crash.
func VethName(stack, container, network string) string {
	return vethPrefix + hashName(stack, container, network)
}

// ContainerInterface returns the interface name of the i-th (from 0) network
// of a container inside its namespace: eth0, eth1, ...
func ContainerInterface(i int) string { return fmt.Sprintf("eth%d", i) }

func hashName(parts ...string) string {
	// Names hold no NUL (validName), so joining with NUL is unambiguous.
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])[:hashChars]
}

// bridgeMAC returns a fixed, locally administered unicast MAC for a bridge.
// A bridge without a set address takes the lowest MAC of its ports, which
// changes as containers come and go and breaks neighbours' ARP caches.
func bridgeMAC(bridge string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(bridge))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}

// isBerthLink reports whether name has the shape of a berth link name with
// the given prefix.
func isBerthLink(name, prefix string) bool {
	if len(name) != len(prefix)+hashChars || !strings.HasPrefix(name, prefix) {
		return false
	}
	_, err := hex.DecodeString(name[len(prefix):])
	return err == nil
}

// validName checks a stack, network or container name: non-empty, valid
// UTF-8, no control characters (and so no NUL and no newline).
func validName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty: %w", kind, ErrInvalidName)
	}
	if !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return fmt.Errorf("%s name %q holds control characters or invalid UTF-8: %w", kind, name, ErrInvalidName)
	}
	return nil
}

// Hostname returns the host name for a container: its name lowered, with
// every character outside [a-z0-9-] replaced by '-', leading and trailing
// '-' trimmed and cut to 63 characters, so it is a valid RFC 1123 label. A
// name with nothing usable in it gives "container".
func Hostname(container string) string {
	b := make([]byte, 0, len(container))
	for _, r := range strings.ToLower(container) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b = append(b, byte(r))
		default:
			b = append(b, '-')
		}
	}
	s := strings.Trim(string(b), "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	if s == "" {
		return "container"
	}
	return s
}
