package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"text/tabwriter"
	"time"
)

// printJSON writes v as indented JSON, the output of -o json.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable starts a table with docker's spacing; the caller flushes it.
func (c *cli) newTable() *tabwriter.Writer {
	return tabwriter.NewWriter(c.stdout, 0, 8, 3, ' ', 0)
}

// shortID is the 12-character id a table shows, like docker's.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// formatAge words how long ago something happened: "40s ago", "3m ago",
// "2h ago", "5d ago". Coarse on purpose, like docker ps.
func formatAge(d time.Duration) string {
	switch {
	case d < 0:
		return "just now" // a daemon clock slightly ahead of ours
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// formatUntil words how far away an expiry is: "in 4m12s", or "expired".
// Rounding to the second makes an expiry set just now read as the ttl that
// was asked for ("in 10m0s"), not a second less.
func formatUntil(d time.Duration) string {
	if d <= 0 {
		return "expired"
	}
	return "in " + d.Round(time.Second).String()
}

// parseSeconds parses a Go duration for the API's whole-second fields,
// refusing fractions rather than silently rounding what the operator asked.
func parseSeconds(name, s string, minSeconds int64) (int64, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q: want a duration such as 90s, 10m or 2h", name, s)
	}
	if d%time.Second != 0 {
		return 0, fmt.Errorf("%s %s: want a whole number of seconds", name, s)
	}
	if secs := int64(d / time.Second); secs >= minSeconds {
		return secs, nil
	}
	return 0, fmt.Errorf("%s %s: must be at least %s", name, s, time.Duration(minSeconds)*time.Second)
}

// sizeUnits are the suffixes parseSize knows: binary units as powers of
// 1024, decimal ones as powers of 1000. Matched case-insensitively.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
}

// parseSize parses a byte count such as "1048576", "256MiB", "1.5GiB" or
// "2GB".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	mult, ok := sizeUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, fmt.Errorf("size %q: want bytes or a number with B, KiB, MiB, GiB, TiB, KB, MB, GB or TB", s)
	}
	n, err := scaleDecimal(t[:i], mult)
	if errors.Is(err, errFraction) {
		return 0, fmt.Errorf("size %q: not a whole number of bytes", s)
	}
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return n, nil
}

// parseCPUs turns a CPU count such as "0.5" into the API's nano-CPUs.
func parseCPUs(s string) (int64, error) {
	n, err := scaleDecimal(strings.TrimSpace(s), 1e9)
	if errors.Is(err, errFraction) {
		return 0, fmt.Errorf("cpus %q: finer than a billionth of a CPU", s)
	}
	if err != nil {
		return 0, fmt.Errorf("cpus %q: %w", s, err)
	}
	return n, nil
}

// errFraction is scaleDecimal's answer to a number finer than its unit.
var errFraction = errors.New("fraction too fine")

// scaleDecimal returns num × mult for a plain decimal num such as "1.5",
// when that is a whole number that fits an int64. big.Rat keeps "1.1MB" and
// "0.3" CPUs exact where a float64 would be off by one.
func scaleDecimal(num string, mult int64) (int64, error) {
	if num == "" || num == "." || strings.Count(num, ".") > 1 || strings.Trim(num, "0123456789.") != "" {
		return 0, errors.New("want a number such as 2 or 0.5")
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, errors.New("want a number such as 2 or 0.5")
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, errFraction
	}
	if n := r.Num(); n.IsInt64() {
		return n.Int64(), nil
	}
	return 0, fmt.Errorf("more than %d", int64(math.MaxInt64))
}
