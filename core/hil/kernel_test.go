package hil

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseDepends(t *testing.T) {
	tests := []struct {
		name, out, want string
		wantErr         bool
	}{
		{"one", "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n", "linux-image-6.1.0-56-amd64", false},
		{"ignores other kinds", "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n  Recommends: firmware\n  Depends: <linux-image>\n", "linux-image-6.1.0-56-amd64", false},
		{"none (no package lists)", "", "", true},
		{"two", "  Depends: linux-image-6.1.0-55-amd64\n  Depends: linux-image-6.1.0-56-amd64\n", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDepends([]byte(tc.out))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseDepends = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrNoKernelPackage) {
				t.Errorf("error %v is not ErrNoKernelPackage", err)
			}
		})
	}
}

// TestUnpack builds a small kernel package with dpkg-deb and checks that
// only vmlinuz and the wanted modules' closure come out, in load order.
func TestUnpack(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("needs dpkg-deb (Debian)")
	}
	root := t.TempDir()
	files := map[string][]byte{
		"DEBIAN/control":                                               []byte("Package: linux-image-test\nVersion: 1.0\nArchitecture: amd64\nMaintainer: berth\nDescription: test\n"),
		"boot/vmlinuz-6.1.0-test":                                      []byte("KERNEL"),
		"boot/System.map-6.1.0-test":                                   []byte("MAP"),
		"lib/modules/6.1.0-test/kernel/net/can/can.ko":                 fakeELF("depends=\x00", false),
		"lib/modules/6.1.0-test/kernel/net/can/can-raw.ko":             fakeELF("depends=can\x00", false),
		"lib/modules/6.1.0-test/kernel/drivers/net/can/vcan.ko":        fakeELF("depends=can-dev\x00", false),
		"lib/modules/6.1.0-test/kernel/drivers/net/can/dev/can-dev.ko": fakeELF("depends=\x00", false),
		"lib/modules/6.1.0-test/kernel/drivers/gpu/big.ko":             fakeELF("depends=\x00", false),
	}
	for name, data := range files {
		path := filepath.Join(root, "pkg", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deb := filepath.Join(root, "test.deb")
	if out, err := exec.Command("dpkg-deb", "--build", "-Zgzip", filepath.Join(root, "pkg"), deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v: %s", err, out)
	}

	k, err := unpack(context.Background(), deb, filepath.Join(root, "out"), []string{"vcan", "can_raw"})
	if err != nil {
		t.Fatalf("unpack: %v", err)
	}
	var names []string
	for _, m := range k.Modules {
		names = append(names, m.Name)
	}
	if want := []string{"can_dev", "vcan", "can", "can_raw"}; !slices.Equal(names, want) {
		t.Errorf("modules = %v, want %v", names, want)
	}
	if k.Release != "6.1.0-test" {
		t.Errorf("release = %q", k.Release)
	}
	if data, err := os.ReadFile(k.Vmlinuz()); err != nil || string(data) != "KERNEL" {
		t.Errorf("vmlinuz = %q, %v", data, err)
	}
	entries, err := os.ReadDir(filepath.Join(k.Dir, "modules"))
	if err != nil || len(entries) != 4 {
		t.Errorf("modules dir has %d files (%v), want 4", len(entries), err)
	}

	if _, err := unpack(context.Background(), deb, filepath.Join(root, "out2"), []string{"missing"}); !errors.Is(err, ErrModuleNotFound) {
		t.Errorf("unpack of a missing module = %v, want ErrModuleNotFound", err)
	}
}
