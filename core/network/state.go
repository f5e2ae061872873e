package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-io/berth/core/fsutil"
)

// netState is what berth keeps of one stack network: its subnet and the
// address of every container that holds one. It is stored as JSON in
// <stateDir>/<bridge>.json.
type netState struct {
	Instance  string                `json:"instance"`
	Stack     string                `json:"stack"`
	Name      string                `json:"name"`
	Bridge    string                `json:"bridge"`
	Subnet    netip.Prefix          `json:"subnet"`
	Addresses map[string]netip.Addr `json:"addresses"`
}

type netKey struct{ stack, name string }

func (s *netState) key() netKey { return netKey{s.Stack, s.Name} }

func (s *netState) network() *Network {
	return &Network{Stack: s.Stack, Name: s.Name, Bridge: s.Bridge, Subnet: s.Subnet, Gateway: gateway(s.Subnet)}
}

func statePath(dir, bridge string) string { return filepath.Join(dir, bridge+".json") }

// loadStates reads every network state file in dir written by instance. A
// file whose bridge is not the one instance would use (written by another
// instance, or by a berth before names held the instance) is skipped with a
// warning: its network is not this instance's.
func loadStates(dir, instance string, log *slog.Logger) (map[netKey]*netState, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read state dir: %w", err)
	}
	out := make(map[netKey]*netState)
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") || !isBerthLink(strings.TrimSuffix(name, ".json"), bridgePrefix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read network state: %w", err)
		}
		var s netState
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("parse network state %s: %w (move the file away to forget the network)", name, err)
		}
		if s.Bridge != strings.TrimSuffix(name, ".json") || !s.Subnet.Addr().Is4() {
			return nil, fmt.Errorf("network state %s is inconsistent (move the file away to forget the network)", name)
		}
		if s.Instance != instance || s.Bridge != BridgeName(instance, s.Stack, s.Name) {
			log.Warn("network state of another berth instance or an older berth ignored; move the file away to silence this",
				"file", filepath.Join(dir, name), "stack", s.Stack, "network", s.Name, "bridge", s.Bridge,
				"file_instance", s.Instance, "instance", instance)
			continue
		}
		if s.Addresses == nil {
			s.Addresses = make(map[string]netip.Addr)
		}
		out[s.key()] = &s
	}
	return out, nil
}

// save writes s atomically: a temporary file, fsync, rename, fsync of dir.
func (s *netState) save(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("save network state: %w", err)
	}
	if err := fsutil.WriteFile(statePath(dir, s.Bridge), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save network state: %w", err)
	}
	return nil
}

func removeState(dir, bridge string) error {
	if err := os.Remove(statePath(dir, bridge)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove network state: %w", err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return fmt.Errorf("remove network state: %w", err)
	}
	return nil
}

// allocate returns container's address, giving it one if it has none. The
// first address tried is a hash of the container name, so a container that
// leaves and comes back gets the same address unless another took it
// meanwhile. It reports whether the state changed.
func (s *netState) allocate(container string) (netip.Addr, bool, error) {
	if a, ok := s.Addresses[container]; ok {
		return a, false, nil
	}
	first, n := hostRange(s.Subnet)
	used := make(map[netip.Addr]bool, len(s.Addresses))
	for _, a := range s.Addresses {
		used[a] = true
	}
	h := fnv.New64a()
	h.Write([]byte(container))
	start := h.Sum64() % n
	for i := range n {
		a := addrAdd(first, (start+i)%n)
		if !used[a] {
			s.Addresses[container] = a
			return a, true, nil
		}
	}
	return netip.Addr{}, false, fmt.Errorf("network %q of stack %q: all %d addresses of %s are taken: give the network a larger subnet in the playbook: %w",
		s.Name, s.Stack, n, s.Subnet, ErrSubnetFull)
}
