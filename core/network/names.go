package network

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Link name prefixes. Every link berth makes in the host namespace starts
// with one of them; its alias (see LinkMark) says which instance made it.
const (
	bridgePrefix = "bb-"
	vethPrefix   = "bv-"
	hashChars    = 10 // hex characters of SHA-256 after the prefix
)

// maxIfName is the longest interface name Linux accepts (IFNAMSIZ - 1).
const maxIfName = 15

// BridgeName returns the host bridge name of network of stack for the
// berth instance (see [InstanceID]): "bb-" and ten hex characters of a hash
// of all three, 13 characters whatever the input. Two berthds sharing a host
// namespace so get different bridges for equally named stacks and networks.
// It is a pure function so a restarted berthd finds its bridges again.
func BridgeName(instance, stack, network string) string {
	return bridgePrefix + hashName(instance, stack, network)
}

// VethName returns the host-side veth name of container of stack on network
// for the berth instance: "bv-" and ten hex characters of a hash of all
// four, 13 characters. It is a pure function so berthd can find a
// container's links after a crash.
func VethName(instance, stack, container, network string) string {
	return vethPrefix + hashName(instance, stack, container, network)
}

// instanceHexChars is how many hex characters of SHA-256 [InstanceID] keeps.
const instanceHexChars = 8

// maxInstance is the longest instance identity [WithInstance] accepts; with
// the mark prefix it stays well within the kernel's 128-byte alias limit.
const maxInstance = 64

// markPrefix starts the alias (IFLA_IFALIAS) of every link berth makes in
// the host namespace; the instance identity follows.
const markPrefix = "berth:"

// InstanceID returns the identity of the berth instance keeping its network
// state in stateDir: the first 8 hex characters of the SHA-256 of the
// absolute, cleaned path. It is stable across restarts of a daemon with the
// same state directory; moving the directory makes a new instance, which
// neither uses nor cleans up the links of the old one.
func InstanceID(stateDir string) (string, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return "", fmt.Errorf("instance id of %s: %w", stateDir, err)
	}
	sum := sha256.Sum256([]byte(abs))
	return hex.EncodeToString(sum[:])[:instanceHexChars], nil
}

// CheckInstance validates an instance identity: 1 to 64 characters of
// [A-Za-z0-9._-], so names and link marks built from it are unambiguous.
// The error wraps ErrInvalidName.
func CheckInstance(id string) error {
	if id == "" || len(id) > maxInstance {
		return fmt.Errorf("instance id %q must be 1 to %d characters: %w", id, maxInstance, ErrInvalidName)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("instance id %q may hold only letters, digits, '.', '_' and '-': %w", id, ErrInvalidName)
		}
	}
	return nil
}

// LinkMark returns the alias ("berth:<instance>") that marks a host link
// as made by instance; core/cannative marks its links the same way.
func LinkMark(instance string) string { return markPrefix + instance }

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
