package playbook

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func mustLoad(t *testing.T, name string, vars map[string]string) *Playbook {
	t.Helper()
	f := filepath.Join(playbooksDir, "good", name)
	pb, diags := Load(f, vars)
	if diags.HasErrors() {
		t.Fatalf("%s:\n%s", name, render(diags, f))
	}
	return pb
}

func TestDecodeFullExample(t *testing.T) {
	pb := mustLoad(t, "full.hcl", nil)
	s := pb.Stack
	if s.Name != "demo" || len(s.Containers) != 2 {
		t.Fatalf("stack %q with %d containers", s.Name, len(s.Containers))
	}
	if want := []*Network{{Name: "backend", Subnet: netip.MustParsePrefix("10.89.0.0/24")}}; len(s.Networks) != 1 ||
		s.Networks[0].Name != want[0].Name || s.Networks[0].Subnet != want[0].Subnet {
		t.Errorf("networks = %+v", s.Networks)
	}
	if len(s.Volumes) != 1 || s.Volumes[0].Name != "db-data" || s.Volumes[0].Type != VolumePersistent || s.Volumes[0].Size != 0 {
		t.Errorf("volumes = %+v", s.Volumes[0])
	}

	db := s.Container("db")
	checks := []struct {
		name      string
		got, want any
	}{
		{"images", refs(db.Images), []string{"berth.local/busybox:1.35", "berth.local/kvdb:1"}},
		{"command", db.Command, []string{"/bin/kvdb"}},
		{"args", db.Args, []string{"-listen", ":7000"}},
		{"env", db.Env, map[string]string{"LOG_LEVEL": "info"}},
		{"working_dir", db.WorkingDir, "/"},
		{"user", db.User, "1000:1000"},
		{"read_only", db.ReadOnly, true},
		{"network_mode", db.NetworkMode, NetworkBridge},
		{"networks", db.Networks, []string{"backend"}},
		{"mount", []any{db.Mounts[0].Volume, db.Mounts[0].Path, db.Mounts[0].ReadOnly}, []any{"db-data", "/var/lib/kvdb", false}},
		{"resources", db.Resources, Resources{Memory: 64 << 20, CPU: 0.5, PIDs: 64}},
		{"restart", db.Restart, Restart{Policy: RestartOnFailure, Attempts: 5, Delay: time.Second, MaxDelay: 30 * time.Second}},
		{"health", *db.Health, Health{Exec: []string{"/bin/kvdb", "-ping"}, Interval: 2 * time.Second, Timeout: time.Second, Retries: 3, StartPeriod: 5 * time.Second}},
		{"stop", db.Stop, Stop{Signal: syscall.SIGTERM, Timeout: 10 * time.Second}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("db %s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if r := db.Images[1].Range; r.Start.Line != 12 || r.Start.Column != 32 || r.Filename != pb.File {
		t.Errorf("image range = %s, want %s:12,32", r, pb.File)
	}

	app := s.Container("app")
	if len(app.DependsOn) != 1 || app.DependsOn[0].Container != "db" || app.DependsOn[0].Condition != ConditionHealthy {
		t.Errorf("app depends_on = %+v", app.DependsOn)
	}
}

func TestDecodeDefaults(t *testing.T) {
	c := mustLoad(t, "minimal.hcl", nil).Stack.Container("hello")
	want := &Container{
		Name:        "hello",
		Images:      c.Images,
		ReadOnly:    true,
		NetworkMode: NetworkNone,
		Restart:     Restart{Policy: RestartOnFailure, Attempts: 0, Delay: time.Second, MaxDelay: time.Minute},
		Stop:        Stop{Signal: syscall.SIGTERM, Timeout: 10 * time.Second},
		DeclRange:   c.DeclRange,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}

	h, diags := Parse([]byte(`stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    health { exec = ["/bin/true"] }
    depends_on "b" {}
  }
  container "b" { images = ["berth.local/b:1"] }
}`), "h.hcl", nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	a := h.Stack.Container("a")
	if want := (Health{Exec: []string{"/bin/true"}, Interval: 10 * time.Second, Timeout: 5 * time.Second, Retries: 3}); !reflect.DeepEqual(*a.Health, want) {
		t.Errorf("health defaults = %+v, want %+v", *a.Health, want)
	}
	if a.DependsOn[0].Condition != ConditionStarted {
		t.Errorf("condition default = %q", a.DependsOn[0].Condition)
	}
}

func TestDecodeOtherGood(t *testing.T) {
	v := mustLoad(t, "variables.hcl", nil).Stack
	app := v.Container("app")
	if got := refs(app.Images); !reflect.DeepEqual(got, []string{"berth.local/app:1"}) {
		t.Errorf("images from locals = %v", got)
	}
	if !reflect.DeepEqual(app.Args, []string{"-serve", "-v"}) {
		t.Errorf("args = %v", app.Args)
	}
	if !reflect.DeepEqual(app.Env, map[string]string{"TEAM": "body", "DEBUG": "false"}) {
		t.Errorf("env = %v", app.Env)
	}
	if app.Resources.Memory != 32<<20 {
		t.Errorf("memory = %d", app.Resources.Memory)
	}
	if vol := v.Volumes[0]; vol.Type != VolumeTmpfs || vol.Size != 16<<20 {
		t.Errorf("tmpfs volume = %+v", vol)
	}

	g := mustLoad(t, "host-network.hcl", nil).Stack
	proxy := g.Container("proxy")
	if proxy.NetworkMode != NetworkHost || proxy.ReadOnly || proxy.Restart.Policy != RestartAlways ||
		proxy.Stop != (Stop{Signal: syscall.SIGQUIT, Timeout: 500 * time.Millisecond}) {
		t.Errorf("proxy = %+v", proxy)
	}
}

func TestVariableOverrides(t *testing.T) {
	tests := []struct {
		name    string
		vars    map[string]string
		check   func(t *testing.T, c *Container)
		wantErr string
	}{
		{
			name: "all types",
			vars: map[string]string{
				"registry": "example.org", "replicas_memory": "64", "debug": "true",
				"extra_args": `["-a", "-b"]`, "labels": `{ TEAM = "chassis" }`,
			},
			check: func(t *testing.T, c *Container) {
				if refs(c.Images)[0] != "example.org/app:1" || c.Resources.Memory != 64<<20 ||
					!reflect.DeepEqual(c.Args, []string{"-serve", "-a", "-b"}) ||
					!reflect.DeepEqual(c.Env, map[string]string{"TEAM": "chassis", "DEBUG": "true"}) {
					t.Errorf("container = %+v", c)
				}
			},
		},
		{name: "bad number", vars: map[string]string{"replicas_memory": "lots"}, wantErr: "Invalid value for variable"},
		{name: "bad bool", vars: map[string]string{"debug": "maybe"}, wantErr: "Invalid value for variable"},
		{name: "bad list", vars: map[string]string{"extra_args": `["a"`}, wantErr: "Unterminated tuple"},
		{name: "unknown", vars: map[string]string{"regsitry": "x"}, wantErr: "Value for undeclared variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb, diags := Load(filepath.Join(playbooksDir, "good", "variables.hcl"), tt.vars)
			if tt.wantErr == "" {
				if diags.HasErrors() {
					t.Fatal(render(diags, ""))
				}
				tt.check(t, pb.Stack.Container("app"))
				return
			}
			if !diags.HasErrors() || !strings.Contains(render(diags, ""), tt.wantErr) {
				t.Fatalf("want %q, got:\n%s", tt.wantErr, render(diags, ""))
			}
		})
	}
	pb := mustLoad(t, "full.hcl", map[string]string{"log_level": "debug"})
	if got := pb.Stack.Container("db").Env["LOG_LEVEL"]; got != "debug" {
		t.Errorf("-var log_level: env LOG_LEVEL = %q", got)
	}
}

func TestStartOrder(t *testing.T) {
	pb, diags := Parse([]byte(`stack "s" {
  container "web" {
    images = ["berth.local/a:1"]
    depends_on "api" {}
  }
  container "db" { images = ["berth.local/a:1"] }
  container "api" {
    images = ["berth.local/a:1"]
    depends_on "db" {}
    depends_on "cache" {}
  }
  container "cache" { images = ["berth.local/a:1"] }
  container "log" { images = ["berth.local/a:1"] }
}`), "o.hcl", nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var got [][]string
	for _, wave := range pb.Stack.StartOrder() {
		var names []string
		for _, c := range wave {
			names = append(names, c.Name)
		}
		got = append(got, names)
	}
	want := [][]string{{"db", "cache", "log"}, {"api"}, {"web"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("StartOrder = %v, want %v", got, want)
	}
}

func TestCheckImages(t *testing.T) {
	pb := mustLoad(t, "full.hcl", nil)
	asked := map[string]int{}
	diags := CheckImages(pb, func(ref string) bool {
		asked[ref]++
		return ref == "berth.local/busybox:1.35"
	})
	if asked["berth.local/busybox:1.35"] != 1 {
		t.Errorf("has called %d times for a shared image, want once", asked["berth.local/busybox:1.35"])
	}
	if len(diags) != 2 {
		t.Fatalf("got %d diagnostics, want 2:\n%s", len(diags), render(diags, ""))
	}
	wantAt(t, diags, 12, 32, "Image not found")
	wantAt(t, diags, 48, 27, "Image not found")
	if !strings.Contains(diags[0].Detail, "berth image import FILE") {
		t.Errorf("detail %q does not say how to import", diags[0].Detail)
	}
}

func TestOtherGrantsRefused(t *testing.T) {
	pb, diags := parse([]byte(`stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    can "body" {
      bus     = "can0"
      receive = ["*"]
    }
    gps "nav" {}
  }
}`), "g.hcl", nil)
	wantAt(t, diags, 8, 5, "Device grants are not yet supported")
	if len(diags) == 0 || !strings.Contains(diags[0].Detail, `gps grant "nav" is reserved for the device broker`) {
		t.Errorf("detail = %q", diags[0].Detail)
	}
	if len(diags) != 1 {
		t.Errorf("got %d diagnostics, want 1:\n%s", len(diags), render(diags, ""))
	}
	// The refused grant is in the model beside the decoded one.
	if pb == nil {
		t.Fatal("no playbook")
	}
	g := pb.Stack.Container("a").Grants
	if len(g) != 2 || g[0].Class != "can" || g[0].CAN == nil || g[1].Class != "gps" || g[1].Name != "nav" ||
		g[1].CAN != nil || g[1].DeclRange.Start.Line != 8 {
		t.Errorf("grants = %+v", g)
	}
}

func refs(imgs []ImageRef) []string {
	var out []string
	for _, i := range imgs {
		out = append(out, i.Ref)
	}
	return out
}
