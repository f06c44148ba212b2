package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		err  string // a part of the error, "" for none
	}{
		{in: "0", want: 0},
		{in: "1048576", want: 1 << 20},
		{in: "512B", want: 512},
		{in: "256MiB", want: 256 << 20},
		{in: "256mib", want: 256 << 20},
		{in: "1.5GiB", want: 3 << 29},
		{in: "1KiB", want: 1024},
		{in: "2TiB", want: 2 << 40},
		{in: "1KB", want: 1000},
		{in: "1.1MB", want: 1_100_000},
		{in: "2GB", want: 2_000_000_000},
		{in: "3 GiB", want: 3 << 30},
		{in: "", err: "want a number"},
		{in: "MiB", err: "want a number"},
		{in: "1.5B", err: "whole number of bytes"},
		{in: "-1MiB", err: "want bytes or a number"},
		{in: "1.2.3MB", err: "want a number"},
		{in: "10m", err: "want bytes or a number"},
		{in: "1e3", err: "want bytes or a number"},
		{in: "9999999TiB", err: "more than"},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if !errMatches(err, tt.err) || got != tt.want && tt.err == "" {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error containing %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseCPUs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{in: "0.5", want: 500_000_000},
		{in: "2", want: 2_000_000_000},
		{in: "0.3", want: 300_000_000}, // 0.3*1e9 in float64 is 299999999.99999994
		{in: ".25", want: 250_000_000},
		{in: "0.0000000001", err: "billionth"},
		{in: "-1", err: "want a number"},
		{in: "NaN", err: "want a number"},
		{in: "1/2", err: "want a number"},
		{in: "1e20", err: "want a number"},
		{in: "99999999999", err: "more than"},
	}
	for _, tt := range tests {
		got, err := parseCPUs(tt.in)
		if !errMatches(err, tt.err) || got != tt.want && tt.err == "" {
			t.Errorf("parseCPUs(%q) = %d, %v; want %d, error containing %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseSeconds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		min  int64
		want int64
		err  string
	}{
		{in: "10m", min: 1, want: 600},
		{in: "1h30m", min: 1, want: 5400},
		{in: "1s", min: 1, want: 1},
		{in: "0", min: 0, want: 0},
		{in: "0s", min: 1, err: "at least 1s"},
		{in: "-5s", min: 1, err: "at least 1s"},
		{in: "1500ms", min: 1, err: "whole number of seconds"},
		{in: "10", min: 1, err: "want a duration"},
		{in: "soon", min: 1, err: "want a duration"},
	}
	for _, tt := range tests {
		got, err := parseSeconds("--ttl", tt.in, tt.min)
		if !errMatches(err, tt.err) || got != tt.want && tt.err == "" {
			t.Errorf("parseSeconds(%q, %d) = %d, %v; want %d, error containing %q", tt.in, tt.min, got, err, tt.want, tt.err)
		}
	}
}

func TestFormatAge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Duration
		want string
	}{
		{-2 * time.Second, "just now"},
		{0, "0s ago"},
		{59 * time.Second, "59s ago"},
		{3*time.Minute + 59*time.Second, "3m ago"},
		{2*time.Hour + 10*time.Minute, "2h ago"},
		{47 * time.Hour, "47h ago"},
		{5*24*time.Hour + time.Hour, "5d ago"},
	}
	for _, tt := range tests {
		if got := formatAge(tt.in); got != tt.want {
			t.Errorf("formatAge(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatUntil(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Duration
		want string
	}{
		{4*time.Minute + 12*time.Second, "in 4m12s"},
		{10*time.Minute - 300*time.Millisecond, "in 10m0s"},
		{2*time.Hour + 3*time.Second, "in 2h0m3s"},
		{0, "expired"},
		{-time.Minute, "expired"},
	}
	for _, tt := range tests {
		if got := formatUntil(tt.in); got != tt.want {
			t.Errorf("formatUntil(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatAttributes(t *testing.T) {
	t.Parallel()
	got := formatAttributes(map[string]string{"z": "1", "a": "x y", "m": ""})
	if want := "a=x y,m=,z=1"; got != want {
		t.Errorf("formatAttributes = %q, want %q", got, want)
	}
	if got := formatAttributes(nil); got != "-" {
		t.Errorf("formatAttributes(nil) = %q, want -", got)
	}
}

func TestIsUUID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"0b7c6f1e-4a8e-4d2b-9c3a-1f2e3d4c5b6a": true,
		"0B7C6F1E-4A8E-4D2B-9C3A-1F2E3D4C5B6A": true,
		"0b7c6f1e":                             false,
		"0b7c6f1e-4a8e-4d2b-9c3a-1f2e3d4c5b6g": false,
		"0b7c6f1e04a8e-4d2b-9c3a-1f2e3d4c5b6a": false,
	} {
		if got := isUUID(s); got != want {
			t.Errorf("isUUID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestSplitList(t *testing.T) {
	t.Parallel()
	got := splitList(" running, exited,,removed ")
	if strings.Join(got, "|") != "running|exited|removed" {
		t.Errorf("splitList = %q", got)
	}
	if got := splitList(""); got != nil {
		t.Errorf("splitList(\"\") = %q, want nil", got)
	}
}

// errMatches reports whether err contains want, or is nil when want is "".
func errMatches(err error, want string) bool {
	if want == "" {
		return err == nil
	}
	return err != nil && strings.Contains(err.Error(), want)
}
