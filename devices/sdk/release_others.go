//go:build !linux

package sdk

// releaseStartupPages does nothing off Linux.
func releaseStartupPages() error { return nil }
