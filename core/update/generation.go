// Package update owns generations: each playbook applied to a stack, kept on
// disk with its -var values and its images resolved to digests, so berthd
// can bring the same stack back after a restart and roll back to an earlier
// one. Writes are all-or-nothing: a generation is written into a new
// directory and synced, then made current by renaming a symlink, so a power
// cut leaves the old or the new generation current, never a mix.
package update

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/berth-io/berth/core/fsutil"
)

// ErrNotFound is returned when a stack has no current generation.
var ErrNotFound = errors.New("no current generation")

// keep is how many generations of a stack stay on disk.
const keep = 5

// Generation is one applied playbook.
type Generation struct {
	Stack     string            `json:"stack"`
	Number    int               `json:"number"`
	File      string            `json:"file"`
	Vars      map[string]string `json:"vars,omitempty"`
	Images    map[string]string `json:"images"` // reference -> manifest digest
	AppliedAt time.Time         `json:"applied_at"`
	Source    []byte            `json:"-"` // stored beside as playbook.hcl
}

// Same reports whether g and o apply the same thing: the same playbook
// bytes, -var values and image digests (file name and time aside).
func (g *Generation) Same(o *Generation) bool {
	return bytes.Equal(g.Source, o.Source) && maps.Equal(g.Vars, o.Vars) && maps.Equal(g.Images, o.Images)
}

// Store keeps generations under one directory, one subdirectory per stack.
// It is not safe for concurrent use on one stack; berthd serialises
// applies per stack.
type Store struct {
	root string
}

// Open returns the store rooted at dir, creating it.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open generations: %w", err)
	}
	return &Store{root: dir}, nil
}

// Commit writes g as the stack's next generation and makes it current. It
// sets g.Number.
func (s *Store) Commit(g *Generation) error {
	dir := filepath.Join(s.root, g.Stack)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("commit generation: %w", err)
	}
	numbers, err := s.numbers(g.Stack)
	if err != nil {
		return err
	}
	g.Number = 1
	if len(numbers) > 0 {
		g.Number = numbers[len(numbers)-1] + 1
	}
	name := strconv.Itoa(g.Number)
	tmp, err := os.MkdirTemp(dir, ".new-")
	if err != nil {
		return fmt.Errorf("commit generation: %w", err)
	}
	defer os.RemoveAll(tmp)
	meta, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return fmt.Errorf("commit generation: %w", err)
	}
	// The files are written into a fresh directory, synced with it, and
	// renamed into place whole; point syncs the rename.
	if err := fsutil.CreateFile(filepath.Join(tmp, "generation.json"), meta, 0o600); err != nil {
		return fmt.Errorf("commit generation: %w", err)
	}
	if err := fsutil.CreateFile(filepath.Join(tmp, "playbook.hcl"), g.Source, 0o600); err != nil {
		return fmt.Errorf("commit generation: %w", err)
	}
	if err := fsutil.SyncDir(tmp); err != nil {
		return fmt.Errorf("commit generation: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("commit generation: %w", err)
	}
	if err := s.point(g.Stack, name); err != nil {
		return err
	}
	s.prune(g.Stack, numbers)
	return nil
}

// Current returns the stack's current generation, or an error wrapping
// ErrNotFound.
func (s *Store) Current(stack string) (*Generation, error) {
	target, err := os.Readlink(filepath.Join(s.root, stack, "current"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("stack %q: %w", stack, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read generation of %q: %w", stack, err)
	}
	dir := filepath.Join(s.root, stack, target)
	meta, err := os.ReadFile(filepath.Join(dir, "generation.json"))
	if err != nil {
		return nil, fmt.Errorf("read generation of %q: %w", stack, err)
	}
	var g Generation
	if err := json.Unmarshal(meta, &g); err != nil {
		return nil, fmt.Errorf("read generation of %q: %s: %w", stack, dir, err)
	}
	if g.Source, err = os.ReadFile(filepath.Join(dir, "playbook.hcl")); err != nil {
		return nil, fmt.Errorf("read generation of %q: %w", stack, err)
	}
	return &g, nil
}

// Stacks lists the stacks that have a current generation, sorted.
func (s *Store) Stacks() ([]string, error) {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("list stacks: %w", err)
	}
	var stacks []string
	for _, e := range entries {
		if _, err := os.Lstat(filepath.Join(s.root, e.Name(), "current")); err == nil {
			stacks = append(stacks, e.Name())
		}
	}
	return stacks, nil
}

// Deactivate makes the stack have no current generation (after `down`);
// its generations stay on disk. Idempotent, and a no-op for a stack that
// never had a generation.
func (s *Store) Deactivate(stack string) error {
	err := os.Remove(filepath.Join(s.root, stack, "current"))
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(s.root, stack)); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
	} else if err != nil {
		return fmt.Errorf("deactivate %q: %w", stack, err)
	}
	if err := fsutil.SyncDir(filepath.Join(s.root, stack)); err != nil {
		return fmt.Errorf("deactivate %q: %w", stack, err)
	}
	return nil
}

// point switches the stack's current symlink to name by rename.
func (s *Store) point(stack, name string) error {
	dir := filepath.Join(s.root, stack)
	tmp := filepath.Join(dir, ".current-"+name)
	os.Remove(tmp)
	if err := os.Symlink(name, tmp); err != nil {
		return fmt.Errorf("switch generation: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "current")); err != nil {
		return fmt.Errorf("switch generation: %w", err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return fmt.Errorf("switch generation: %w", err)
	}
	return nil
}

// numbers lists the stack's generation numbers, ascending.
func (s *Store) numbers(stack string) ([]int, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, stack))
	if err != nil {
		return nil, fmt.Errorf("list generations: %w", err)
	}
	var ns []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			ns = append(ns, n)
		}
	}
	sort.Ints(ns)
	return ns, nil
}

// prune removes the oldest generations beyond keep; older holds the
// numbers that existed before the one just committed.
func (s *Store) prune(stack string, older []int) {
	for len(older) >= keep {
		os.RemoveAll(filepath.Join(s.root, stack, strconv.Itoa(older[0])))
		older = older[1:]
	}
}
