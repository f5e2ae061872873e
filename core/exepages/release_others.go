//go:build !linux

package exepages

// Release does nothing off Linux.
func Release() error { return nil }
