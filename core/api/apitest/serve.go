package apitest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/berth-io/berth/core/api"
)

// Serve serves b on a unix socket in a temp dir for the rest of the test
// and returns the socket's path. The server stops when the test ends.
func Serve(t testing.TB, b api.Backend, opts ...api.ServerOption) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "berthd.sock")
	l, err := api.Listen(sock, 0, -1)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := api.NewServer(b, append([]api.ServerOption{api.WithImportDir(t.TempDir())}, opts...)...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return sock
}

// Dial serves b as Serve does and returns a client connected to it, closed
// when the test ends.
func Dial(t testing.TB, b api.Backend, opts ...api.ServerOption) *api.Client {
	t.Helper()
	c, err := api.Dial(context.Background(), Serve(t, b, opts...))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
