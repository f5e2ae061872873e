package main

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-io/berth/core/image"
	"github.com/berth-io/berth/core/rootfs"
)

func TestBuildAndImport(t *testing.T) {
	if _, err := os.Stat(busyboxPath); err != nil {
		t.Skipf("needs %s: install the Debian package %s", busyboxPath, busyboxPackage)
	}
	ctx := context.Background()
	out := t.TempDir()
	res, err := build(ctx, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(specs) {
		t.Fatalf("built %d archives, want %d", len(res), len(specs))
	}
	s, err := image.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		imgs, err := s.Import(ctx, r.Path, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(imgs) != 1 || imgs[0].Ref != r.Ref || imgs[0].Digest != r.Digest {
			t.Errorf("import %s = %+v, want %s %s", r.Path, imgs, r.Ref, r.Digest)
		}
	}

	// The busybox layer has the binary, its applets and /etc.
	bb, err := s.Resolve(ctx, "berth.local/busybox:1.35")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"bin/busybox": false, "bin/sh": false, "etc/passwd": false, "etc/hosts": false, "tmp/": false}
	rc, err := s.OpenLayer(ctx, bb.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := want[h.Name]; ok {
			want[h.Name] = true
		}
		if h.Name == "bin/sh" && (h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox") {
			t.Errorf("bin/sh = %c -> %s", h.Typeflag, h.Linkname)
		}
	}
	for n, seen := range want {
		if !seen {
			t.Errorf("busybox layer lacks %s", n)
		}
	}
	kv, err := s.Resolve(ctx, "kvdb:1")
	if err != nil || len(kv.Config.Entrypoint) == 0 || kv.Config.Entrypoint[0] != "/bin/kvdb" {
		t.Fatalf("kvdb image = %+v, %v", kv, err)
	}

	// Three images stacked into one root: busybox, base-config, kvdb.
	if os.Geteuid() == 0 {
		rs, err := rootfs.Open(filepath.Join(t.TempDir(), "rootfs"), s)
		if err != nil {
			t.Fatal(err)
		}
		var stack []image.Image
		for _, ref := range []string{"busybox:1.35", "base-config:1", "kvdb:1"} {
			img, err := s.Resolve(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			stack = append(stack, img)
		}
		if _, err := rs.Prepare(ctx, "demo", stack); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rs.Remove(ctx, "demo") })
		merged, err := rs.Mount(ctx, "demo")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"bin/sh", "bin/kvdb", "etc/berth-demo.conf", "etc/passwd"} {
			if _, err := os.Lstat(filepath.Join(merged, p)); err != nil {
				t.Errorf("stacked root lacks %s: %v", p, err)
			}
		}

		// Five containers sharing busybox: each layer is on disk once.
		var sum int64
		for i, app := range []string{"kvdb:1", "sensor:1", "dashboard:1", "kvdb:1", "sensor:1"} {
			a, err := s.Resolve(ctx, app)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rs.Prepare(ctx, fmt.Sprintf("c%d", i), []image.Image{stack[0], a}); err != nil {
				t.Fatal(err)
			}
			sum += stack[0].Size + a.Size
		}
		u, err := rs.Usage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if u.Layers != 5 { // busybox, base-config, kvdb, sensor, dashboard
			t.Errorf("unpacked layers = %d, want 5", u.Layers)
		}
		t.Logf("5 containers on busybox: unpacked layers %d bytes + uppers %d bytes on disk; sum of their (compressed) image sizes %d bytes",
			u.LayerBytes, u.UpperBytes, sum)
	}

	// Same inputs, same digests.
	again, err := build(ctx, t.TempDir(), []string{"busybox", "base-config", "kvdb"})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if r.Digest != res[i].Digest {
			t.Errorf("%s rebuilt as %s, first build %s", r.Ref, r.Digest, res[i].Digest)
		}
	}
	if _, err := build(ctx, t.TempDir(), []string{"nope"}); err == nil {
		t.Error("unknown image name accepted")
	}
}
