package oci

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrUnknownUser is returned (wrapped) when a user or group name is not in
// the rootfs's /etc/passwd or /etc/group.
var ErrUnknownUser = errors.New("unknown user or group")

// ResolveUser turns "user[:group]" into numeric ids. Each part is a number
// or a name looked up in rootfs/etc/passwd and rootfs/etc/group (never the
// host's files). Without a group, the user's primary group from passwd is
// used (0 when the user is numeric and not listed). When the user is known
// by name in passwd, its supplementary groups from /etc/group are added.
// An empty spec means root, 0:0.
func ResolveUser(rootfs, user string) (specs.User, error) {
	if user == "" {
		return specs.User{}, nil
	}
	name, group, hasGroup := strings.Cut(user, ":")
	if name == "" || (hasGroup && group == "") {
		return specs.User{}, fmt.Errorf("resolve user %q: %w: want uid[:gid]", user, ErrInvalidSpec)
	}
	passwd, perr := readColonFile(filepath.Join(rootfs, "etc", "passwd"))
	groups, gerr := readColonFile(filepath.Join(rootfs, "etc", "group"))

	var u specs.User
	userName := ""
	if id, ok := parseID(name); ok {
		u.UID = id
		for _, p := range passwd { // a numeric uid may still have a passwd entry
			if len(p) >= 4 && p[2] == name {
				userName = p[0]
				if gid, ok := parseID(p[3]); ok {
					u.GID = gid
				}
				break
			}
		}
	} else {
		if perr != nil {
			return specs.User{}, fmt.Errorf("resolve user %q: %w", user, perr)
		}
		found := false
		for _, p := range passwd {
			if len(p) >= 4 && p[0] == name {
				uid, ok1 := parseID(p[2])
				gid, ok2 := parseID(p[3])
				if !ok1 || !ok2 {
					return specs.User{}, fmt.Errorf("resolve user %q: bad passwd entry for %q", user, name)
				}
				u.UID, u.GID, userName, found = uid, gid, name, true
				break
			}
		}
		if !found {
			return specs.User{}, fmt.Errorf("resolve user %q: %w: %q not in %s/etc/passwd", user, ErrUnknownUser, name, rootfs)
		}
	}
	if hasGroup {
		if id, ok := parseID(group); ok {
			u.GID = id
		} else {
			if gerr != nil {
				return specs.User{}, fmt.Errorf("resolve user %q: %w", user, gerr)
			}
			found := false
			for _, g := range groups {
				if len(g) >= 3 && g[0] == group {
					gid, ok := parseID(g[2])
					if !ok {
						return specs.User{}, fmt.Errorf("resolve user %q: bad group entry for %q", user, group)
					}
					u.GID, found = gid, true
					break
				}
			}
			if !found {
				return specs.User{}, fmt.Errorf("resolve user %q: %w: group %q not in %s/etc/group", user, ErrUnknownUser, group, rootfs)
			}
		}
	}
	if userName != "" {
		for _, g := range groups {
			if len(g) < 4 {
				continue
			}
			gid, ok := parseID(g[2])
			if !ok || gid == u.GID {
				continue
			}
			for _, m := range strings.Split(g[3], ",") {
				if m == userName {
					u.AdditionalGids = append(u.AdditionalGids, gid)
					break
				}
			}
		}
	}
	return u, nil
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// readColonFile reads a passwd/group style file into fields per line.
func readColonFile(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out, sc.Err()
}
