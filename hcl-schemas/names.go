package hclschemas

import (
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// NamePattern is the shape of every name a user gives in a playbook or a
// board file (stack, container, volume, network, board, plugin, device):
// names become directory names, host names and /etc/hosts entries.
var NamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// SuggestName turns n into a name that fits NamePattern, for the fix
// sentence of a diagnostic; fallback when nothing of n is left.
func SuggestName(n, fallback string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(n) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	s := strings.TrimLeft(b.String(), "_.-")
	if len(s) > 63 {
		s = s[:63]
	}
	if s == "" {
		s = fallback
	}
	return s
}

// SortByPlace orders diagnostics as they stand in their files, the ones
// with no place (e.g. an unknown -var name) first: checks find problems in
// another order than a reader meets them.
func SortByPlace(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		if a == nil || b == nil {
			return a == nil && b != nil
		}
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}
