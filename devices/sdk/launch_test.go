package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/berth-io/berth/core/syncbuf"
	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can/cantest"
	"github.com/berth-io/berth/devices/sdk"
)

// exampleBin is devices/examples/loopback built as a real binary, once,
// by TestMain.
var exampleBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-loopback-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exampleBin = filepath.Join(dir, "loopback")
	cmd := exec.Command("go", "build", "-o", exampleBin, "../examples/loopback")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		fmt.Fprintf(os.Stderr, "go build ../examples/loopback: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func example(*testing.T) string { return exampleBin }

func TestLaunchRefusesWrongChecksum(t *testing.T) {
	bin := example(t)
	sum, err := sdk.FileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("0", 64)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		name, pin string
		mention   []string
	}{
		{"other sum", wrong, []string{bin, "loopback", wrong, sum}},
		{"not hex", "xyz", []string{bin, `"xyz"`}},
	} {
		cl, err := sdk.Launch(ctx, bin, sdk.WithSHA256(c.pin))
		if err == nil {
			cl.Kill()
			t.Fatalf("%s: launch succeeded", c.name)
		}
		if !errors.Is(err, devices.ErrChecksumMismatch) {
			t.Errorf("%s: %v, want ErrChecksumMismatch", c.name, err)
		}
		for _, m := range c.mention {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, m)
			}
		}
	}
}

func TestLaunchExamplePlugin(t *testing.T) {
	bin := example(t)
	sum, err := sdk.FileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "berthd", Output: logs, Level: hclog.Debug})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := sdk.Launch(ctx, bin, sdk.WithSHA256(strings.ToUpper(sum)), sdk.WithLogger(logger))
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	t.Cleanup(c.Kill)

	if c.Version != devices.ContractVersion {
		t.Errorf("negotiated version %d, want %d", c.Version, devices.ContractVersion)
	}
	if c.Info.Name != "loopback" || !c.Info.Drives(devices.ClassCAN) || c.CAN == nil {
		t.Fatalf("info %+v (CAN client %v), want loopback driving can", c.Info, c.CAN)
	}
	schema, err := c.Base.ConfigSchema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a := schema.Attr("fd"); a == nil || !a.Type.Equals(cty.Bool) {
		t.Fatalf("schema attr fd: %+v, want a bool", a)
	}

	// A config the plugin refuses comes back as ErrInvalidConfig.
	bad := cty.ObjectVal(map[string]cty.Value{"device": cty.StringVal(""), "fd": cty.True})
	if err := c.Base.Configure(ctx, bad); !errors.Is(err, devices.ErrInvalidConfig) {
		t.Fatalf("configure with empty device: %v, want ErrInvalidConfig", err)
	}
	good := cty.ObjectVal(map[string]cty.Value{"device": cty.StringVal("loop0"), "fd": cty.True})
	if err := c.Base.Configure(ctx, good); err != nil {
		t.Fatalf("configure: %v", err)
	}

	fctx, fcancel := context.WithCancel(ctx)
	fs, err := c.Base.Fingerprint(fctx)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := fs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(fp.Devices) != 1 || fp.Devices[0].ID != "loop0" || fp.Devices[0].Health != devices.HealthHealthy ||
		fp.Devices[0].Attributes["mode"] != "fd" {
		t.Fatalf("fingerprint %+v, want loop0 healthy fd", fp)
	}
	fcancel()
	if _, err := fs.Recv(); !errors.Is(err, context.Canceled) {
		t.Fatalf("fingerprint recv after cancel: %v, want context.Canceled", err)
	}

	cantest.Run(t, "loopback", func(t *testing.T) cantest.Harness {
		return cantest.Harness{Driver: c.CAN, Device: "loop0"}
	})

	stats, err := c.Base.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 || stats[0].ID != "loop0" || stats[0].Time.IsZero() {
		t.Fatalf("stats %+v, want one for loop0", stats)
	}
	if _, ok := stats[0].Counters["rx_frames"]; !ok {
		t.Errorf("stats counters %v lack rx_frames", stats[0].Counters)
	}

	// The plugin's log line reached the host's logger under its name.
	if out := logs.String(); !strings.Contains(out, "berthd.loopback") || !strings.Contains(out, "configured") {
		t.Errorf("host log lacks the plugin's named line:\n%s", out)
	}

	c.Kill()
	if !c.Exited() {
		t.Error("plugin process still running after Kill")
	}
}
