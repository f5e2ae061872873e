package update

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestCommitAndCurrent(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Current("demo"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Current of unknown stack = %v, want ErrNotFound", err)
	}
	for i := 1; i <= 7; i++ {
		g := &Generation{Stack: "demo", File: "p.hcl", Source: []byte("stack \"demo\" {} # " + strconv.Itoa(i)),
			Images: map[string]string{"busybox": "sha256:aa"}}
		if err := s.Commit(g); err != nil {
			t.Fatal(err)
		}
		if g.Number != i {
			t.Fatalf("generation number = %d, want %d", g.Number, i)
		}
	}
	cur, err := s.Current("demo")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Number != 7 || string(cur.Source) != "stack \"demo\" {} # 7" || cur.Images["busybox"] != "sha256:aa" {
		t.Fatalf("current = %+v", cur)
	}
	nums, err := s.numbers("demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(nums) != keep || nums[0] != 7-keep+1 {
		t.Fatalf("kept generations %v, want the last %d", nums, keep)
	}
	stacks, err := s.Stacks()
	if err != nil || len(stacks) != 1 || stacks[0] != "demo" {
		t.Fatalf("Stacks = %v, %v", stacks, err)
	}
	if err := s.Deactivate("demo"); err != nil {
		t.Fatal(err)
	}
	if err := s.Deactivate("demo"); err != nil {
		t.Fatalf("second Deactivate: %v", err)
	}
	if _, err := s.Current("demo"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Current after Deactivate = %v, want ErrNotFound", err)
	}
	if stacks, _ := s.Stacks(); len(stacks) != 0 {
		t.Fatalf("Stacks after Deactivate = %v", stacks)
	}
}

func TestCommitLeavesNoTempOnDisk(t *testing.T) {
	root := t.TempDir()
	s, _ := Open(root)
	if err := s.Commit(&Generation{Stack: "a", Source: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "a"))
	for _, e := range entries {
		if e.Name() != "1" && e.Name() != "current" {
			t.Fatalf("unexpected entry %q left in the stack dir", e.Name())
		}
	}
}

func TestDeactivateStackWithoutGenerations(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Deactivate("never-applied"); err != nil {
		t.Fatalf("Deactivate of a stack never committed = %v, want nil", err)
	}
}
