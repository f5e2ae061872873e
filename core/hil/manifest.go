package hil

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// ManifestName is the file, in a test package's directory, that names
// what the VM needs for that package's tests besides the test binary and
// its testdata/. Without it a package gets only those two.
const ManifestName = "hil.hcl"

// Manifest is a test package's hil.hcl. It has three optional arguments:
//
//	# Go main packages (import paths, or paths relative to this file),
//	# built static (CGO_ENABLED=0, GOARCH=amd64) and put in /hil/bin,
//	# first in the guest's PATH.
//	go = ["github.com/berth-io/berth/cmd/berthd"]
//	# Host programs (names looked up in PATH, or absolute paths), with
//	# their ELF interpreter and shared libraries, at their host paths.
//	host = ["crun"]
//	# Host files or directory trees (relative to this file), by their
//	# name in the test's working directory /hil/pkg.
//	files = { "board.hcl" = "../board.hcl" }
//
// Keep it small: every byte is copied into the guest on every boot.
type Manifest struct {
	// Path is the file the manifest was read from.
	Path  string
	Go    []Item
	Host  []Item
	Files []FileItem
	// goRange is the range of the go argument, where a build failure is reported.
	goRange hcl.Range
}

// Item is one string of a manifest, with where it was written.
type Item struct {
	Value string
	Range hcl.Range
}

// FileItem is one entry of files: Name in the guest's /hil/pkg, from the
// host path Src (relative to the manifest).
type FileItem struct {
	Name, Src Item
}

// LoadManifest reads the manifest in dir. It returns nil and no error when
// dir has none. Every problem is reported as file:line:col with what to
// change; all of them, not just the first.
func LoadManifest(dir string) (*Manifest, error) {
	p, err := filepath.Abs(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, fmt.Errorf("read HIL manifest: %w", err)
	}
	src, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read HIL manifest: %w", err)
	}
	return ParseManifest(src, p)
}

// ParseManifest parses the manifest text src, read from filename.
func ParseManifest(src []byte, filename string) (*Manifest, error) {
	m := &Manifest{Path: filename}
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diagError(diags)
	}
	attrs, diags := f.Body.JustAttributes()
	sorted := slices.SortedFunc(maps.Values(attrs), func(a, b *hcl.Attribute) int {
		return a.Range.Start.Byte - b.Range.Start.Byte
	})
	for _, a := range sorted {
		switch name := a.Name; name {
		case "go":
			m.goRange = a.Range
			m.Go, diags = stringItems(a, diags)
		case "host":
			m.Host, diags = stringItems(a, diags)
		case "files":
			m.Files, diags = fileItems(a, diags)
		default:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Unsupported argument",
				Detail:  fmt.Sprintf("A HIL manifest has go, host and files; remove %q.", name),
				Subject: a.NameRange.Ptr(),
			})
		}
	}
	if diags.HasErrors() {
		return nil, diagError(diags)
	}
	return m, nil
}

// strings_ decodes a list of strings, each with its range.
func stringItems(a *hcl.Attribute, diags hcl.Diagnostics) ([]Item, hcl.Diagnostics) {
	exprs, d := hcl.ExprList(a.Expr)
	if d.HasErrors() {
		return nil, append(diags, listError(a, "a list of strings, such as [\"crun\"]"))
	}
	var items []Item
	for _, e := range exprs {
		s, ok := literal(e)
		if !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Not a string",
				Detail:  fmt.Sprintf("Each element of %s must be a non-empty quoted string.", a.Name),
				Subject: e.Range().Ptr(),
			})
			continue
		}
		items = append(items, Item{Value: s, Range: e.Range()})
	}
	return items, diags
}

// fileItems decodes files = { "NAME" = "SRC", ... }.
func fileItems(a *hcl.Attribute, diags hcl.Diagnostics) ([]FileItem, hcl.Diagnostics) {
	pairs, d := hcl.ExprMap(a.Expr)
	if d.HasErrors() {
		return nil, append(diags, listError(a, `a map from a name in /hil/pkg to a host path, such as { "board.hcl" = "../board.hcl" }`))
	}
	var items []FileItem
	for _, p := range pairs {
		name, nok := literal(p.Key)
		src, sok := literal(p.Value)
		if !nok || !sok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Not a string",
				Detail:  "Each entry of files must map a quoted name to a quoted host path.",
				Subject: hcl.RangeBetween(p.Key.Range(), p.Value.Range()).Ptr(),
			})
			continue
		}
		clean := path.Clean(name)
		if path.IsAbs(clean) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Name outside the test's directory",
				Detail:  fmt.Sprintf("%q must be a relative path below /hil/pkg, such as \"board.hcl\".", name),
				Subject: p.Key.Range().Ptr(),
			})
			continue
		}
		items = append(items, FileItem{Name: Item{Value: clean, Range: p.Key.Range()}, Src: Item{Value: src, Range: p.Value.Range()}})
	}
	return items, diags
}

func listError(a *hcl.Attribute, want string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError, Summary: "Wrong type",
		Detail: fmt.Sprintf("%s must be %s.", a.Name, want), Subject: a.Expr.Range().Ptr(),
	}
}

// literal returns the value of a constant non-empty string expression.
func literal(e hcl.Expression) (string, bool) {
	v, d := e.Value(nil)
	if d.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type() != cty.String || v.AsString() == "" {
		return "", false
	}
	return v.AsString(), true
}

// Resolve returns the files the manifest ships: the Go programs built into
// a directory under cacheRoot (reused by the next build: go relinks only
// what changed), the host programs with their libraries, and the files.
// Concurrent Resolves of one manifest serialise on a lock in that directory.
func (m *Manifest) Resolve(ctx context.Context, cacheRoot string) ([]File, error) {
	dir := filepath.Dir(m.Path)
	var files []File
	var errs []error
	if len(m.Go) > 0 {
		fs, err := m.buildGo(ctx, cacheRoot)
		if err != nil {
			errs = append(errs, err)
		}
		files = append(files, fs...)
	}
	for _, h := range m.Host {
		p, err := LookTool(h.Value)
		if err == nil {
			var fs []File
			fs, err = HostBinary(p)
			files = append(files, fs...)
		}
		if err != nil {
			errs = append(errs, at(h.Range, "host program %q: %v (install it on the host, or remove it from host)", h.Value, err))
		}
	}
	for _, f := range m.Files {
		src := f.Src.Value
		if !filepath.IsAbs(src) {
			src = filepath.Join(dir, src)
		}
		if _, err := os.Stat(src); err != nil {
			errs = append(errs, at(f.Src.Range, "file %q for %s: %v (paths are relative to %s)", f.Src.Value, f.Name.Value, err, ManifestName))
			continue
		}
		files = append(files, File{Name: PkgDir + "/" + f.Name.Value, Src: src})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return files, nil
}

// buildGo builds m.Go, statically for the guest, into a cache directory
// keyed by the manifest's path and package list.
func (m *Manifest) buildGo(ctx context.Context, cacheRoot string) ([]File, error) {
	abs, err := filepath.Abs(m.Path)
	if err != nil {
		return nil, err
	}
	key := sha256.New()
	pkgs := make([]string, 0, len(m.Go))
	fmt.Fprintf(key, "%s\x00", abs)
	for _, g := range m.Go {
		pkgs = append(pkgs, g.Value)
		fmt.Fprintf(key, "%s\x00", g.Value)
	}
	out := filepath.Join(cacheRoot, "go", hex.EncodeToString(key.Sum(nil)[:8]))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, at(m.goRange, "go: %v", err)
	}
	unlock, err := lockDir(out)
	if err != nil {
		return nil, at(m.goRange, "go: %v", err)
	}
	defer unlock()

	args := append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", out + string(filepath.Separator)}, pkgs...)
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = filepath.Dir(abs)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, at(m.goRange, "go build %s: %v\n%s", strings.Join(pkgs, " "), err, strings.TrimSpace(string(b)))
	}
	var files []File
	for _, g := range m.Go {
		name := binaryName(g.Value)
		src := filepath.Join(out, name)
		if _, err := os.Stat(src); err != nil {
			return nil, at(g.Range, "go build %s wrote no %s (is it a main package?)", g.Value, name)
		}
		files = append(files, File{Name: BinDir + "/" + name, Src: src})
	}
	return files, nil
}

// binaryName is the name go build gives the program of package pkg: its
// last path element, or the one before a major-version suffix ("v2").
func binaryName(pkg string) string {
	pkg = path.Clean(filepath.ToSlash(pkg))
	base := path.Base(pkg)
	if len(base) > 1 && base[0] == 'v' && strings.Trim(base[1:], "0123456789") == "" && path.Dir(pkg) != "." {
		return path.Base(path.Dir(pkg))
	}
	return base
}

// goTool is the go command: the one in PATH, else the one this program
// was built with.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// at returns an error located at r as file:line:col.
func at(r hcl.Range, format string, args ...any) error {
	return fmt.Errorf("%s:%d:%d: %s", r.Filename, r.Start.Line, r.Start.Column, fmt.Sprintf(format, args...))
}

// diagError turns diagnostics into one error, each as file:line:col:
// summary: detail.
func diagError(diags hcl.Diagnostics) error {
	var errs []error
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		if d.Subject == nil {
			errs = append(errs, errors.New(msg))
			continue
		}
		errs = append(errs, at(*d.Subject, "%s", msg))
	}
	return errors.Join(errs...)
}
