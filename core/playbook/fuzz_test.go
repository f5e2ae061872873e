package playbook

import (
	"os"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// FuzzParse checks that no input makes Parse panic or run away (a watchdog
// crashes the worker, so the fuzzer keeps the input), and that every error
// it reports points into the file.
func FuzzParse(f *testing.F) {
	for _, kind := range []string{"good", "bad"} {
		for _, file := range playbookFiles(f, kind) {
			src, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		wd := time.AfterFunc(10*time.Second, func() { panic("Parse took over 10s") })
		defer wd.Stop()
		pb, diags := Parse(src, "fuzz.hcl", nil)
		for _, d := range diags {
			if d.Severity != hcl.DiagError {
				continue
			}
			if d.Subject == nil || d.Subject.Filename != "fuzz.hcl" {
				t.Fatalf("error without a range in the file: %s", d.Error())
			}
		}
		if diags.HasErrors() != (pb == nil) {
			t.Fatalf("playbook %v with errors=%v", pb != nil, diags.HasErrors())
		}
		if pb != nil {
			pb.Stack.StartOrder()
			if _, fd := Format(src, "fuzz.hcl"); fd.HasErrors() {
				t.Fatalf("Format refused a valid playbook: %s", fd)
			}
		}
	})
}
