package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

func testConfig(t *testing.T) Config {
	t.Helper()
	c, err := Config{HostID: "h", AllowImages: []string{"img:1", "repo/*"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mutate func(*Config)
		flag   string
	}{
		{func(c *Config) { c.Socket = "relative.sock" }, "--socket"},
		{func(c *Config) { c.DefaultTTL = 48 * time.Hour }, "--default-ttl"},
		{func(c *Config) { c.MaxTTL = 48 * time.Hour }, "--max-ttl"},
		{func(c *Config) { c.DefaultMemory = 8 << 30 }, "--default-memory"},
		{func(c *Config) { c.DefaultPids = 5000 }, "--default-pids"},
		{func(c *Config) { c.SandboxUser = "0:0" }, "--sandbox-user"},
		{func(c *Config) { c.SandboxUser = "nobody" }, "--sandbox-user"},
		{func(c *Config) { c.Workdir = "/" }, "--workdir"},
		{func(c *Config) { c.AllowImages = []string{"*"} }, "--allow-image"},
		{func(c *Config) { c.HostID = "bad host" }, "--host-id"},
	} {
		c := Config{HostID: "h"}
		tc.mutate(&c)
		_, err := c.withDefaults()
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%s: err = %v", tc.flag, err)
		}
	}
}

func TestCheckCreateDefaults(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	sp, err := c.checkCreate(api.CreateRequest{ProjectID: "p", Image: "repo/x:2", Env: map[string]string{"A": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if sp.TTL != DefaultTTL || sp.MemoryBytes != DefaultMemory || sp.NanoCPUs != DefaultCPUs || sp.Pids != DefaultPids ||
		sp.Workdir != DefaultWorkdir || len(sp.Env) != 1 || sp.Env[0] != "A=1" {
		t.Errorf("spec = %+v", sp)
	}
	// The container built from it carries the template whatever was asked.
	cc, hc := c.containerConfig("id", sp)
	if cc.User != DefaultSandboxUser || hc.NetworkMode != "none" || !hc.ReadonlyRootfs || hc.Privileged ||
		*hc.PidsLimit != DefaultPids || hc.MemorySwap != hc.Memory {
		t.Errorf("container config loosened: %+v %+v", cc, hc)
	}
}

func TestImageAllowed(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	for ref, want := range map[string]bool{"img:1": true, "img:2": false, "img": false, "repo/x": true, "repo/": true, "repox": false, "other/repo/x": false} {
		if got := c.imageAllowed(ref); got != want {
			t.Errorf("imageAllowed(%q) = %v, want %v", ref, got, want)
		}
	}
}

func TestCheckTar(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{"a": true, "a/b": true, "./a": true, "a/../b": false, "../a": false, "/etc/x": false, "a/..": false} {
		if err := checkTarName(name); (err == nil) != ok {
			t.Errorf("checkTarName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestCheckFilesPath(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	for p, ok := range map[string]bool{"/workspace": true, "/workspace/a": true, "/tmp": true, "/tmp/x/y": true,
		"/workspacex": false, "/etc": false, "/": false, "tmp": false, "/tmp/../etc": false, "/tmp/./x": false} {
		if err := c.checkFilesPath(p); (err == nil) != ok {
			t.Errorf("checkFilesPath(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}

func TestCapped(t *testing.T) {
	t.Parallel()
	c := &capped{max: 5}
	for _, s := range []string{"ab", "cdef", "gh"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if string(c.buf) != "abcde" || !c.truncated {
		t.Errorf("capped = %q truncated %v", c.buf, c.truncated)
	}
}
