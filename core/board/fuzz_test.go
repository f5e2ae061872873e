package board_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/berth-io/berth/core/board"
	"github.com/berth-io/berth/plugins/socketcan"
	"github.com/berth-io/berth/plugins/vcan"
)

// FuzzParse checks that no board file makes Parse panic or run away (a
// watchdog crashes the worker, so the fuzzer keeps the input), that every
// error it reports points into the file, and that the plugin configs of a
// board it accepts go through the built-in plugins' schemas (CheckConfig)
// and their config decoders without a panic either.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"../../board-support/*/board.hcl", "../../testdata/boards/bad/*.hcl"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
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
		b, diags := board.Parse(src, "fuzz.hcl")
		checkInFile(t, diags)
		if diags.HasErrors() != (b == nil) {
			t.Fatalf("board %v with errors=%v", b != nil, diags.HasErrors())
		}
		if b == nil {
			return
		}
		for _, p := range b.Plugins {
			v, diags := board.CheckConfig(p, vcan.Schema)
			checkInFile(t, diags)
			if !diags.HasErrors() {
				_, _ = vcan.ParseConfig(v)
			}
			v, diags = board.CheckConfig(p, socketcan.Schema)
			checkInFile(t, diags)
			if !diags.HasErrors() {
				_, _ = socketcan.ParseConfig(v)
			}
		}
	})
}

// checkInFile fails when an error diagnostic has no range in fuzz.hcl.
func checkInFile(t *testing.T, diags hcl.Diagnostics) {
	t.Helper()
	for _, d := range diags {
		if d.Severity == hcl.DiagError && (d.Subject == nil || d.Subject.Filename != "fuzz.hcl") {
			t.Fatalf("error without a range in the file: %s", d.Error())
		}
	}
}
