package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/client"
	"github.com/sandboxd/sandboxd/internal/testenv"
)

// TestReadmeWalkthrough runs the README's walkthrough, line by line with
// the shell stopping at the first failure, against the daemon binary built
// from this tree.
func TestReadmeWalkthrough(t *testing.T) {
	t.Parallel()
	docker := testenv.Docker(t)
	dbURL := testenv.Database(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- walkthrough -->\n```sh\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no walkthrough block")
	}
	script := string(m[1])

	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", bin+"/", "../sandboxd", "../sandboxctl").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "sandboxd.sock")
	host := "test-readme-" + testenv.RandomHex(4)
	t.Cleanup(func() { testenv.RemoveHostContainers(t, docker, host) })
	ctx, cancel := context.WithCancel(context.Background())
	daemon := exec.CommandContext(ctx, filepath.Join(bin, "sandboxd"), "serve", "--socket", sock,
		"--database-url", dbURL, "--host-id", host, "--allow-image", "sandboxd-test/*", "--log-format", "text")
	var log testenv.Buffer
	daemon.Stdout, daemon.Stderr = &log, &log
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		daemon.Wait()
		if t.Failed() {
			t.Logf("daemon log:\n%s", log.String())
		}
	})
	c := &client.Client{Socket: sock}
	testenv.Eventually(t, 30*time.Second, "daemon answers its health check", func() bool {
		_, err := c.Health(ctx)
		return err == nil
	})

	sh := exec.Command("bash", "-euo", "pipefail", "-x", "-c", script)
	sh.Dir = dir
	sh.Env = append(os.Environ(), "SANDBOXD_SOCKET="+sock)
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough failed: %v\n%s", err, out)
	}
	for _, want := range []string{"hello from sandbox as uid 65534", `print("hello")`, "demo", "released", "expires at"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("walkthrough output lacks %q:\n%s", want, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "from-sandbox", "hello.py")); err != nil || string(b) != "print(\"hello\")\n" {
		t.Errorf("copied back: %q, %v", b, err)
	}
}
