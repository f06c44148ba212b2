package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/daemon"
)

func TestParseServeFlags(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"SANDBOXD_MAX_TTL":     "2h",
		"SANDBOXD_ALLOW_IMAGE": "a:1,b/*",
		"SANDBOXD_MAX_MEMORY":  "8GiB",
		"SANDBOXD_HOST_ID":     "from-env",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c, _, format, err := parseServeFlags([]string{"--host-id", "from-flag", "--default-cpus", "0.5",
		"--allow-uid", "1000,root", "--allow-gid", "root", "--socket-mode", "0600", "--log-format", "text"}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxTTL != 2*time.Hour || c.MaxMemory != 8<<30 || c.HostID != "from-flag" || c.DefaultCPUs != 5e8 ||
		len(c.AllowImages) != 2 || c.AllowImages[1] != "b/*" || len(c.AllowUIDs) != 2 || c.AllowUIDs[1] != 0 || len(c.AllowGIDs) != 1 || c.SocketMode != 0o600 || format != "text" {
		t.Errorf("config = %+v", c)
	}
	if c.DefaultTTL != daemon.DefaultTTL || c.MaxPerProject != daemon.DefaultMaxPerProject || c.DefaultMemory != daemon.DefaultMemory {
		t.Errorf("defaults not applied: %+v", c)
	}

	for _, tc := range []struct {
		args []string
		env  map[string]string
		says string
	}{
		{[]string{"--max-ttl", "forever"}, nil, "max-ttl"},
		{[]string{"--max-memory", "lots"}, nil, "max-memory"},
		{[]string{"--default-cpus", "-1"}, nil, "default-cpus"},
		{[]string{"--allow-uid", "no-such-user-here"}, nil, "allow-uid"},
		{[]string{"--socket-mode", "rw"}, nil, "--socket-mode"},
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
		{nil, map[string]string{"SANDBOXD_MAX_PIDS": "many"}, "--max-pids (from SANDBOXD_MAX_PIDS)"},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
		{[]string{"--max-per-project", "0"}, nil, "--max-per-project: must be positive"},
		{[]string{"--stop-timeout", "-1s"}, nil, "--stop-timeout: must be positive"},
		{[]string{"--socket-mode", "0"}, nil, "--socket-mode"},
	} {
		lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
		_, _, _, err := parseServeFlags(tc.args, lookup)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%v %v: err = %v, want it to name %q", tc.args, tc.env, err, tc.says)
		}
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"512MiB": 512 << 20, "4GiB": 4 << 30, "1000": 1000, "2MB": 2e6, "64K": 64 << 10, "1B": 1} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1MiB", "MiB", "1.5GiB", "9999999999TiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) passed", in)
		}
	}
}
