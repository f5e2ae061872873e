// Package apitest provides a fake api.Backend for tests of the API and of
// its callers: each method calls the function field of the same name, and a
// method whose field is nil fails with api.ErrUnsupported.
package apitest

import (
	"context"
	"fmt"
	"io"

	"github.com/berth-io/berth/core/api"
)

// Backend is an api.Backend whose behaviour is its function fields. It is
// safe for concurrent use as long as the functions are.
type Backend struct {
	PlanFn        func(ctx context.Context, req api.ApplyRequest) (*api.Plan, error)
	UpFn          func(ctx context.Context, req api.ApplyRequest, progress func(api.Event)) (*api.Plan, error)
	DownFn        func(ctx context.Context, stack string, progress func(api.Event)) error
	ContainersFn  func(ctx context.Context) ([]api.ContainerStatus, error)
	PauseFn       func(ctx context.Context, container string) error
	ResumeFn      func(ctx context.Context, container string) error
	LogsFn        func(ctx context.Context, container string, opts api.LogOptions, emit func(api.LogLine) error) error
	ExecFn        func(ctx context.Context, container string, req api.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error)
	ImagesFn      func(ctx context.Context) ([]api.Image, error)
	ImportImageFn func(ctx context.Context, path string) ([]api.Image, error)
	RemoveImageFn func(ctx context.Context, ref string) error
	VersionFn     func(ctx context.Context) (api.VersionInfo, error)
	DevicesFn     func(ctx context.Context) (api.Devices, error)
}

var _ api.Backend = (*Backend)(nil)

func unsupported(method string) error {
	return fmt.Errorf("fake backend: %s: %w", method, api.ErrUnsupported)
}

func (b *Backend) Plan(ctx context.Context, req api.ApplyRequest) (*api.Plan, error) {
	if b.PlanFn == nil {
		return nil, unsupported("Plan")
	}
	return b.PlanFn(ctx, req)
}

func (b *Backend) Up(ctx context.Context, req api.ApplyRequest, progress func(api.Event)) (*api.Plan, error) {
	if b.UpFn == nil {
		return nil, unsupported("Up")
	}
	return b.UpFn(ctx, req, progress)
}

func (b *Backend) Down(ctx context.Context, stack string, progress func(api.Event)) error {
	if b.DownFn == nil {
		return unsupported("Down")
	}
	return b.DownFn(ctx, stack, progress)
}

func (b *Backend) Containers(ctx context.Context) ([]api.ContainerStatus, error) {
	if b.ContainersFn == nil {
		return nil, unsupported("Containers")
	}
	return b.ContainersFn(ctx)
}

func (b *Backend) Pause(ctx context.Context, container string) error {
	if b.PauseFn == nil {
		return unsupported("Pause")
	}
	return b.PauseFn(ctx, container)
}

func (b *Backend) Resume(ctx context.Context, container string) error {
	if b.ResumeFn == nil {
		return unsupported("Resume")
	}
	return b.ResumeFn(ctx, container)
}

func (b *Backend) Logs(ctx context.Context, container string, opts api.LogOptions, emit func(api.LogLine) error) error {
	if b.LogsFn == nil {
		return unsupported("Logs")
	}
	return b.LogsFn(ctx, container, opts, emit)
}

func (b *Backend) Exec(ctx context.Context, container string, req api.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if b.ExecFn == nil {
		return -1, unsupported("Exec")
	}
	return b.ExecFn(ctx, container, req, stdin, stdout, stderr)
}

func (b *Backend) Images(ctx context.Context) ([]api.Image, error) {
	if b.ImagesFn == nil {
		return nil, unsupported("Images")
	}
	return b.ImagesFn(ctx)
}

func (b *Backend) ImportImage(ctx context.Context, path string) ([]api.Image, error) {
	if b.ImportImageFn == nil {
		return nil, unsupported("ImportImage")
	}
	return b.ImportImageFn(ctx, path)
}

func (b *Backend) RemoveImage(ctx context.Context, ref string) error {
	if b.RemoveImageFn == nil {
		return unsupported("RemoveImage")
	}
	return b.RemoveImageFn(ctx, ref)
}

func (b *Backend) Version(ctx context.Context) (api.VersionInfo, error) {
	if b.VersionFn == nil {
		return api.VersionInfo{}, unsupported("Version")
	}
	return b.VersionFn(ctx)
}

func (b *Backend) Devices(ctx context.Context) (api.Devices, error) {
	if b.DevicesFn == nil {
		return api.Devices{}, unsupported("Devices")
	}
	return b.DevicesFn(ctx)
}
