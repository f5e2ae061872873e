package playbook

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$`)

// sizeUnits maps a unit suffix to its multiplier. IEC units (KiB) and
// Docker's one-letter units (k, m, g, t; either case) are binary; SI units
// (kB, MB) are decimal.
var sizeUnits = map[string]int64{
	"": 1, "b": 1, "B": 1,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	"kB": 1000, "KB": 1000, "MB": 1000 * 1000, "GB": 1000 * 1000 * 1000, "TB": 1000 * 1000 * 1000 * 1000,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
	"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40,
}

// ParseSize parses a byte size: plain bytes ("1048576"), IEC units
// ("64MiB", "1.5GiB", "512KiB"), SI units ("64MB", "1kB"), or Docker's
// binary one-letter units ("64m" = 64 MiB, "1g", "512k", "64b"). A
// fractional value must come to a whole number of bytes. Errors wrap
// ErrInvalidSize.
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		if strings.HasPrefix(strings.TrimSpace(s), "-") {
			return 0, fmt.Errorf("size %q: %w: sizes cannot be negative", s, ErrInvalidSize)
		}
		return 0, fmt.Errorf("size %q: %w: want a number and an optional unit, such as 64MiB", s, ErrInvalidSize)
	}
	mult, ok := sizeUnits[m[2]]
	if !ok {
		return 0, fmt.Errorf("size %q: %w: unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB or k, m, g, t)", s, ErrInvalidSize, m[2])
	}
	r, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return 0, fmt.Errorf("size %q: %w", s, ErrInvalidSize)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("size %q: %w: not a whole number of bytes", s, ErrInvalidSize)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("size %q: %w: too large", s, ErrInvalidSize)
	}
	return r.Num().Int64(), nil
}

// ParseDuration parses a Go duration ("500ms", "1s", "2m") and rejects
// negative ones. Errors wrap ErrInvalidDuration.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w: want a number and a unit, such as 500ms, 10s or 2m", s, ErrInvalidDuration)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q: %w: durations cannot be negative", s, ErrInvalidDuration)
	}
	return d, nil
}

// ParseSignal returns the signal with the given name, with or without the
// SIG prefix and in any case ("SIGTERM", "term", "USR1"). Errors wrap
// ErrUnknownSignal.
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	sig := unix.SignalNum(n)
	if sig == 0 {
		return 0, fmt.Errorf("signal %q: %w", name, ErrUnknownSignal)
	}
	return sig, nil
}
