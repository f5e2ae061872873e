// Package version owns berth's version string, the one `berth version` and
// berthd report. Release builds set it with
//
//	go build -ldflags "-X github.com/berth-io/berth/core/version.Version=1.2.3"
package version

// Version is the release this binary was built from; "dev" for builds
// without -ldflags.
var Version = "dev"
