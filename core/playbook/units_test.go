package playbook

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"64MiB", 64 << 20, true},
		{"1GiB", 1 << 30, true},
		{"512KiB", 512 << 10, true},
		{"1.5GiB", 3 << 29, true},
		{"2TiB", 2 << 40, true},
		{"1048576", 1048576, true},
		{"0", 0, true},
		{"64MB", 64e6, true},
		{"1kB", 1000, true},
		{"1KB", 1000, true},
		{"2GB", 2e9, true},
		{"64m", 64 << 20, true},
		{"64M", 64 << 20, true},
		{"1g", 1 << 30, true},
		{"512k", 512 << 10, true},
		{"64b", 64, true},
		{"64B", 64, true},
		{" 16 MiB ", 16 << 20, true},
		{"0.5k", 512, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"-1MiB", 0, false},
		{"1.5", 0, false},  // not a whole number of bytes
		{"1.3b", 0, false}, // idem
		{"64mb", 0, false}, // ambiguous: Docker binary or SI?
		{"64 parsecs", 0, false},
		{"1e3", 0, false},
		{"9999999999TiB", 0, false}, // overflows int64
		{"0x10", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidSize) {
			t.Errorf("ParseSize(%q) = %d, %v; want ErrInvalidSize", tt.in, got, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"500ms", 500 * time.Millisecond, true},
		{"1s", time.Second, true},
		{"2m", 2 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"0", 0, true},
		{"-1s", 0, false},
		{"10", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidDuration) {
			t.Errorf("ParseDuration(%q) = %v, %v; want ErrInvalidDuration", tt.in, got, err)
		}
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
	}{
		{"SIGTERM", syscall.SIGTERM},
		{"TERM", syscall.SIGTERM},
		{"sigint", syscall.SIGINT},
		{"SIGKILL", syscall.SIGKILL},
		{"HUP", syscall.SIGHUP},
		{"SIGUSR1", syscall.SIGUSR1},
		{"USR2", syscall.SIGUSR2},
		{"SIGQUIT", syscall.SIGQUIT},
		{"SIGPWR", syscall.SIGPWR},
		{"SIGNOPE", 0},
		{"", 0},
		{"15", 0},
	}
	for _, tt := range tests {
		got, err := ParseSignal(tt.in)
		if tt.want == 0 {
			if !errors.Is(err, ErrUnknownSignal) {
				t.Errorf("ParseSignal(%q) = %v, %v; want ErrUnknownSignal", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}
