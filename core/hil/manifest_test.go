package hil

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseManifest(t *testing.T) {
	src := `# a comment
go = ["example.com/m/cmd/a", "./cmd/b"]
host = ["runc"]
files = {
  "board.hcl" = "../board.hcl"
  "sub/../x"  = "x"
}
`
	m, err := ParseManifest([]byte(src), "/p/hil.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Go) != 2 || m.Go[0].Value != "example.com/m/cmd/a" || m.Go[1].Value != "./cmd/b" {
		t.Errorf("go = %+v", m.Go)
	}
	if r := m.Go[1].Range; r.Filename != "/p/hil.hcl" || r.Start.Line != 2 || r.Start.Column != 30 {
		t.Errorf("go[1] range = %v, want /p/hil.hcl:2:30", r)
	}
	if len(m.Host) != 1 || m.Host[0].Value != "runc" {
		t.Errorf("host = %+v", m.Host)
	}
	if len(m.Files) != 2 || m.Files[0].Name.Value != "board.hcl" || m.Files[0].Src.Value != "../board.hcl" || m.Files[1].Name.Value != "x" {
		t.Errorf("files = %+v", m.Files)
	}

	empty, err := ParseManifest(nil, "hil.hcl")
	if err != nil || len(empty.Go)+len(empty.Host)+len(empty.Files) != 0 {
		t.Errorf("empty manifest = %+v, %v", empty, err)
	}
}

func TestParseManifestErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // each a line of the error, in order
	}{
		{"syntax", "go = [\n", []string{"hil.hcl:2:1: Missing expression"}},
		{"all problems, in order", `bogus = 1
go = "./cmd/a"
host = ["runc", 3, ""]
files = { "../up" = "x", "/abs" = "y", "ok" = 7 }
`, []string{
			`hil.hcl:1:1: Unsupported argument: A HIL manifest has go, host and files; remove "bogus".`,
			`hil.hcl:2:6: Wrong type: go must be a list of strings`,
			`hil.hcl:3:17: Not a string: Each element of host must be a non-empty quoted string.`,
			`hil.hcl:3:20: Not a string`,
			`hil.hcl:4:11: Name outside the test's directory: "../up" must be a relative path below /hil/pkg`,
			`hil.hcl:4:26: Name outside the test's directory: "/abs"`,
			`hil.hcl:4:40: Not a string: Each entry of files must map a quoted name to a quoted host path.`,
		}},
		{"block", "go {\n}\n", []string{"hil.hcl:1:1: Unexpected \"go\" block"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tc.src), "hil.hcl")
			if err == nil {
				t.Fatal("accepted")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d = %q, want it to start with %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestLoadManifest(t *testing.T) {
	dir := t.TempDir()
	if m, err := LoadManifest(dir); m != nil || err != nil {
		t.Errorf("LoadManifest of a dir without one = %v, %v; want nil, nil", m, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte("host = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadManifest(dir); err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, ManifestName)+":1:8: ") {
		t.Errorf("LoadManifest of a bad one = %v, want an error at its absolute path:1:8", err)
	}
}

func TestManifestResolveFiles(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg")
	for p, data := range map[string]string{
		filepath.Join(dir, "board.hcl"):          "board",
		filepath.Join(dir, "tree", "a", "b.txt"): "b",
		filepath.Join(pkg, "local.txt"):          "local",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := ParseManifest([]byte(`files = {
  "board.hcl" = "../board.hcl"
  "t"         = "../tree"
  "l.txt"     = "local.txt"
}
`), filepath.Join(pkg, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	files, err := m.Resolve(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := []File{
		{Name: "hil/pkg/board.hcl", Src: filepath.Join(dir, "board.hcl")},
		{Name: "hil/pkg/t", Src: filepath.Join(dir, "tree")},
		{Name: "hil/pkg/l.txt", Src: filepath.Join(pkg, "local.txt")},
	}
	if len(files) != len(want) {
		t.Fatalf("Resolve = %+v, want %+v", files, want)
	}
	for i := range want {
		if files[i] != want[i] {
			t.Errorf("file %d = %+v, want %+v", i, files[i], want[i])
		}
	}

	bad, err := ParseManifest([]byte("files = { \"x\" = \"missing\" }\nhost = [\"no-such-program-berth\"]\n"), filepath.Join(pkg, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Resolve(context.Background(), t.TempDir())
	for _, want := range []string{
		filepath.Join(pkg, ManifestName) + `:2:9: host program "no-such-program-berth"`,
		filepath.Join(pkg, ManifestName) + `:1:17: file "missing" for x`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Resolve of missing things = %v, want it to say %q", err, want)
		}
	}
}

func TestManifestResolveHost(t *testing.T) {
	progs := dynamicHostPrograms(t)
	m, err := ParseManifest([]byte(`host = ["`+filepath.Base(progs[0])+`"]`), "hil.hcl")
	if err != nil {
		t.Fatal(err)
	}
	files, err := m.Resolve(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want, err := HostBinary(progs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) || files[0] != want[0] {
		t.Errorf("Resolve(host %s) = %+v, want %+v", progs[0], files, want)
	}
}

// TestManifestResolveGo builds a main package of a module made here, as
// berth-hil does for a test package's programs.
func TestManifestResolveGo(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	mod := t.TempDir()
	for p, data := range map[string]string{
		"go.mod":             "module example.com/hiltest\n\ngo 1.22\n",
		"cmd/hello/main.go":  "package main\n\nfunc main() { println(\"hello\") }\n",
		"lib/lib.go":         "package lib\n",
		"pkg/hil.hcl":        "",
		"broken/main.go":     "package main\n\nfunc main() { undefined() }\n",
		"pkg/testdata/.keep": "",
	} {
		path := filepath.Join(mod, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	manifest := filepath.Join(mod, "pkg", ManifestName)
	cache := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	m, err := ParseManifest([]byte(`go = ["example.com/hiltest/cmd/hello"]`), manifest)
	if err != nil {
		t.Fatal(err)
	}
	files, err := m.Resolve(ctx, cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Name != "hil/bin/hello" || !strings.HasPrefix(files[0].Src, cache) {
		t.Fatalf("Resolve = %+v, want hil/bin/hello built under %s", files, cache)
	}
	if err := CheckStatic(files[0].Src); err != nil {
		t.Errorf("the program is not static: %v", err)
	}
	if out, err := exec.Command(files[0].Src).CombinedOutput(); err != nil || string(out) != "hello\n" {
		t.Errorf("running it: %q, %v", out, err)
	}

	for _, tc := range []struct{ src, want string }{
		{`go = ["../broken"]`, manifest + ":1:1: go build ../broken: "},
		{"\n\ngo = [\"../lib\"]", manifest + ":3:1: go build ../lib: exit status 1\ngo: no main packages to build"},
	} {
		m, err := ParseManifest([]byte(tc.src), manifest)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Resolve(ctx, cache); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Resolve(%s) = %v, want an error starting %q", tc.src, err, tc.want)
		}
	}
}

func TestBinaryName(t *testing.T) {
	for in, want := range map[string]string{
		"github.com/berth-io/berth/cmd/berthd": "berthd",
		"./cmd/berth-monitor":                  "berth-monitor",
		"../../cmd/mkimage/":                   "mkimage",
		"example.com/tool/v2":                  "tool",
		"v2":                                   "v2",
	} {
		if got := binaryName(in); got != want {
			t.Errorf("binaryName(%q) = %q, want %q", in, got, want)
		}
	}
}
