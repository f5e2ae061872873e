package stack

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/berth-io/berth/core/image"
	"github.com/berth-io/berth/core/playbook"
)

// digestParts splits a container's definition into the parts whose change
// needs a new container, each hashed on its own so a plan can say which
// part changed. Restart policy and dependencies are left out: they change
// how berth supervises a container, not the container.
func digestParts(st *playbook.Stack, c *playbook.Container, images []image.Image) map[string]string {
	digests := make([]string, len(images))
	for i, im := range images {
		digests[i] = im.Digest
	}
	var mounts []any
	for _, m := range c.Mounts {
		var vol *playbook.Volume
		for _, v := range st.Volumes {
			if v.Name == m.Volume {
				vol = v
			}
		}
		mounts = append(mounts, []any{m.Volume, m.Path, m.ReadOnly, vol.Type, vol.Size})
	}
	var networks []any
	for _, name := range c.Networks {
		for _, n := range st.Networks {
			if n.Name == name {
				networks = append(networks, []any{n.Name, n.Subnet.String()})
			}
		}
	}
	parts := map[string]string{
		"images":      hashOf(digests),
		"command":     hashOf(c.Command),
		"args":        hashOf(c.Args),
		"working_dir": hashOf(c.WorkingDir),
		"user":        hashOf(c.User),
		"env":         hashOf(c.Env),
		"root":        hashOf(c.ReadOnly),
		"volumes":     hashOf(mounts),
		"resources":   hashOf(c.Resources),
		"network":     hashOf([]any{c.NetworkMode, networks}),
		"health":      hashOf(c.Health),
		"stop":        hashOf(c.Stop),
	}
	// Each device grant is a part of its own, so a plan names the grant
	// that changed, and a container without grants keeps its digest.
	for _, g := range c.Grants {
		parts[fmt.Sprintf("grant %q", g.Name)] = hashOf([]any{g.Class, g.CAN, g.Native})
	}
	return parts
}

// digestOf combines the parts into one digest.
func digestOf(parts map[string]string) string {
	return hashOf(parts) // json.Marshal sorts map keys
}

// changedParts names the parts that differ, are new or are gone, sorted,
// for a plan's reason.
func changedParts(old, new map[string]string) string {
	var changed []string
	for k, v := range new {
		if old[k] != v {
			changed = append(changed, k)
		}
	}
	for k := range old {
		if _, kept := new[k]; !kept {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	if len(changed) == 0 {
		return ""
	}
	return strings.Join(changed, ", ") + " changed"
}

func hashOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("stack: hashing a playbook value: " + err.Error()) // only plain data reaches here
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}
