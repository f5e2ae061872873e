package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/core/board"
	"github.com/berth-io/berth/core/playbook"
	hclschemas "github.com/berth-io/berth/hcl-schemas"
)

// parseVars turns -var k=v flags into a map.
func parseVars(flags []string) (map[string]string, error) {
	vars := make(map[string]string, len(flags))
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, usageError("-var %q: write -var name=value", f)
		}
		vars[k] = v
	}
	return vars, nil
}

// readFile reads a file the user named.
func readFile(path string) ([]byte, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w: check the path", path, pathErr(err))
	}
	return src, nil
}

// printDiagnostics writes diags to stderr with snippets from sources.
func (e *env) printDiagnostics(diags hcl.Diagnostics, sources map[string][]byte) {
	var width uint
	color := false
	if f, ok := e.Err.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			width = uint(w)
		}
		color = e.getenv("NO_COLOR") == ""
	}
	if err := playbook.WriteDiagnostics(e.Err, diags, sources, width, color); err != nil {
		fmt.Fprintf(e.Err, "%s\n", diags.Error())
	}
}

// diagnosticsFailed prints the diagnostics of a *api.DiagnosticsError
// against the user's file and returns the error that ends berth (exit 1
// with nothing more printed); any other err is returned as is.
func (e *env) diagnosticsFailed(err error, file string, src []byte) error {
	var de *api.DiagnosticsError
	if !errors.As(err, &de) {
		return err
	}
	e.printDiagnostics(de.Diags, map[string][]byte{file: src})
	return &exitError{code: ExitError}
}

type diagJSON struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
}

func diagsToJSON(diags hcl.Diagnostics) []diagJSON {
	out := []diagJSON{}
	for _, d := range diags {
		j := diagJSON{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			j.Severity = "warning"
		}
		if d.Subject != nil {
			j.File, j.Line, j.Column = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
		}
		out = append(out, j)
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newValidateCommand(e *env) *cobra.Command {
	var varFlags []string
	var asJSON bool
	var boardFile string
	cmd := &cobra.Command{
		Use:   "validate [--var name=value]... [--board FILE] FILE",
		Short: "Check a playbook without berthd",
		Long: `Check a playbook: syntax, types, references, dependencies and device grants.
berthd is not needed, so image availability is checked by 'berth plan' instead.

With --board, the playbook's CAN grants are also checked against that board
file: each grant's bus must be one of its CAN devices. Without it the buses
are not checked; berthd checks them against its own board on plan and up.`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			vars, err := parseVars(varFlags)
			if err != nil {
				return err
			}
			path := args[0]
			src, err := readFile(path)
			if err != nil {
				return err
			}
			sources := map[string][]byte{path: src}
			var b *board.Board
			var diags hcl.Diagnostics
			if boardFile != "" {
				bsrc, err := readFile(boardFile)
				if err != nil {
					return err
				}
				sources[boardFile] = bsrc
				b, diags = board.Parse(bsrc, boardFile)
			}
			pb, pdiags := playbook.Parse(src, path, vars)
			diags = append(diags, pdiags...)
			if pb != nil && b != nil {
				diags = append(diags, playbook.CheckBoard(pb.Stack, b)...)
				hclschemas.SortByPlace(diags)
			}
			if asJSON {
				out := struct {
					File        string     `json:"file"`
					Board       string     `json:"board,omitempty"`
					Valid       bool       `json:"valid"`
					Stack       string     `json:"stack,omitempty"`
					Containers  int        `json:"containers"`
					Diagnostics []diagJSON `json:"diagnostics"`
				}{File: path, Board: boardFile, Valid: !diags.HasErrors(), Diagnostics: diagsToJSON(diags)}
				if pb != nil && pb.Stack != nil {
					out.Stack, out.Containers = pb.Stack.Name, len(pb.Stack.Containers)
				}
				if err := writeJSON(e.Out, out); err != nil {
					return err
				}
				if diags.HasErrors() {
					return &exitError{code: ExitError}
				}
				return nil
			}
			if len(diags) > 0 {
				e.printDiagnostics(diags, sources)
			}
			if diags.HasErrors() || pb == nil || pb.Stack == nil {
				return &exitError{code: ExitError}
			}
			n := len(pb.Stack.Containers)
			noun := "containers"
			if n == 1 {
				noun = "container"
			}
			on := ""
			if b != nil {
				on = fmt.Sprintf(" on board %q", b.Name)
			}
			fmt.Fprintf(e.Out, "%s: stack %q is valid%s (%d %s)\n", path, pb.Stack.Name, on, n, noun)
			return nil
		}),
	}
	cmd.Flags().StringArrayVar(&varFlags, "var", nil, "set a playbook variable: name=value (repeatable)")
	cmd.Flags().StringVar(&boardFile, "board", "", "also check the grants' buses against this board file (without it, buses are not checked)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newFmtCommand(e *env) *cobra.Command {
	var check, diff, write bool
	cmd := &cobra.Command{
		Use:   "fmt [--check] [--diff] [--write=true] FILE|DIR...",
		Short: "Rewrite playbooks in canonical HCL layout",
		Long: `Rewrite playbooks in canonical HCL layout and list the files it changed.
A directory stands for the .hcl files in it; "-" reads stdin and writes stdout.

With --check nothing is written: berth lists the files that would change and
exits 3 if there are any. A file that does not parse is reported and left alone.`,
		Args: cobra.MinimumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if check {
				write = false
			}
			files, err := expandHCLFiles(args)
			if err != nil {
				return err
			}
			var changed, failed int
			for _, f := range files {
				c, err := e.fmtFile(f, write, diff)
				if err != nil {
					failed++
					var xe *exitError
					if !errors.As(err, &xe) {
						fmt.Fprintf(e.Err, "berth: %v\n", err)
					}
					continue
				}
				if c {
					changed++
				}
			}
			switch {
			case failed > 0:
				return &exitError{code: ExitError}
			case check && changed > 0:
				return &exitError{code: ExitFmtChanges}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&check, "check", false, "write nothing; exit 3 if any file is not formatted")
	cmd.Flags().BoolVar(&diff, "diff", false, "print the changes as a unified diff")
	cmd.Flags().BoolVar(&write, "write", true, "write the result back to the file")
	return cmd
}

// expandHCLFiles replaces each directory in args by its .hcl files.
func expandHCLFiles(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		if a == "-" {
			files = append(files, a)
			continue
		}
		fi, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("fmt %s: %w: check the path", a, pathErr(err))
		}
		if !fi.IsDir() {
			files = append(files, a)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(a, "*.hcl"))
		if err != nil {
			return nil, fmt.Errorf("fmt %s: %w", a, err)
		}
		sort.Strings(matches)
		files = append(files, matches...)
	}
	return files, nil
}

// fmtFile formats one file and reports whether it changed.
func (e *env) fmtFile(path string, write, diff bool) (bool, error) {
	var src []byte
	var err error
	if path == "-" {
		src, err = io.ReadAll(e.In)
	} else {
		src, err = readFile(path)
	}
	if err != nil {
		return false, err
	}
	name := path
	if name == "-" {
		name = "<stdin>"
	}
	out, diags := playbook.Format(src, name)
	if diags.HasErrors() {
		e.printDiagnostics(diags, map[string][]byte{name: src})
		return false, &exitError{code: ExitError}
	}
	if path == "-" {
		if diff {
			_, err := io.WriteString(e.Out, unifiedDiff(name, src, out))
			return !bytes.Equal(src, out), err
		}
		_, err := e.Out.Write(out)
		return !bytes.Equal(src, out), err
	}
	if bytes.Equal(src, out) {
		return false, nil
	}
	fmt.Fprintln(e.Out, path)
	if diff {
		io.WriteString(e.Out, unifiedDiff(path, src, out))
	}
	if write {
		if err := writeFileKeepMode(path, out); err != nil {
			return true, err
		}
	}
	return true, nil
}

// writeFileKeepMode replaces path with data, keeping its permissions; the
// file is written aside and renamed, so a crash leaves the old or the new text.
func writeFileKeepMode(path string, data []byte) error {
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".berth-fmt-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// pathErr drops the operation and path from a *fs.PathError, for messages
// that name the path themselves ("read X: is a directory", not
// "read X: read X: is a directory").
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
