package main

import (
	"testing"
	"time"
)

func TestBootTimeout(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want time.Duration
	}{
		{"go test default", []string{"-test.paniconexit0", "-test.timeout=10m0s", "-test.v=true"}, 10*time.Minute + bootAllowance},
		{"double dash", []string{"--test.timeout=90s"}, 90*time.Second + bootAllowance},
		{"separate value", []string{"-test.timeout", "2m"}, 2*time.Minute + bootAllowance},
		{"none", []string{"-test.v=true"}, defaultTimeout},
		{"zero means none", []string{"-test.timeout=0s"}, defaultTimeout},
		{"garbage", []string{"-test.timeout=soon"}, defaultTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := bootTimeout(tc.args); got != tc.want {
				t.Errorf("bootTimeout(%q) = %v, want %v", tc.args, got, tc.want)
			}
		})
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no arguments", nil, 2},
		{"missing binary", []string{"/nonexistent/pkg.test"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, err := run(tc.args)
			if err == nil || code != tc.code {
				t.Errorf("run(%q) = %d, %v; want %d and an error", tc.args, code, err, tc.code)
			}
		})
	}
}
