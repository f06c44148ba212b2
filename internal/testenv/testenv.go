// Package testenv gives integration tests the real services they run
// against: a fresh PostgreSQL database per test, cloned from a migrated
// template, and the local Docker engine with the locally built test image.
//
// A missing service skips the test on a developer's machine and fails it
// when CI=true, so CI can never pass by testing nothing. `make test` sets
// both services up (scripts/setup-host.sh).
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/sandboxd/sandboxd/migrations"
	"github.com/sandboxd/sandboxd/store"
)

// Image is the sandbox image that scripts/setup-host.sh builds locally.
const Image = "sandboxd-test/busybox:latest"

// TestLabel marks every container a test creates, with RunID as its value,
// so tests touch only their own containers.
const TestLabel = "io.sandboxd.test"

// RunID is unique to this test binary's run.
var RunID = "run-" + RandomHex(4)

// Unavailable skips the test, or fails it when CI=true.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format+" (run `make test` to set it up)", args...)
}

// AdminURL is a connection string to the test PostgreSQL server, from
// SANDBOXD_TEST_DATABASE_URL or the local server over its Unix socket.
func AdminURL() string {
	if u := os.Getenv("SANDBOXD_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres:///postgres?host=/var/run/postgresql"
}

var template = sync.OnceValues(func() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	if err != nil {
		return "", err
	}
	name := "sandboxd_tmpl_" + hex.EncodeToString(h.Sum(nil))[:12]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return name, store.PrepareTemplate(ctx, AdminURL(), name)
})

// Database returns the connection string of a new database that holds the
// newest schema and is dropped when the test ends.
func Database(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := store.DatabaseExists(ctx, AdminURL(), "postgres"); err != nil {
		Unavailable(t, "PostgreSQL is not reachable: %v", err)
	}
	tmpl, err := template()
	if err != nil {
		t.Fatalf("prepare template database: %v", err)
	}
	name := "sandboxd_test_" + RandomHex(6)
	if err := store.CreateDatabase(ctx, AdminURL(), name, tmpl); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := store.DropDatabase(ctx, AdminURL(), name); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	url, err := store.DatabaseURL(AdminURL(), name)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// Store opens a store on a fresh database (see Database), closed when the
// test ends.
func Store(t testing.TB) (*store.Store, string) {
	t.Helper()
	url := Database(t)
	st, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(st.Close)
	return st, url
}

// Docker returns a client of the engine at DOCKER_HOST (or the default
// socket), after checking that it answers and holds the test image.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		Unavailable(t, "Docker engine is not reachable: %v", err)
	}
	if _, err := cli.ImageInspect(ctx, Image); err != nil {
		Unavailable(t, "test image %s is missing: %v", Image, err)
	}
	return cli
}

// RandomHex returns 2n random hex digits.
func RandomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Eventually polls cond every 20ms until it returns true, failing the test
// with msg when timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Buffer collects a child process's output; it is safe to read while the
// process writes.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// RemoveHostContainers removes every container that a test daemon with the
// host id made (they carry io.sandboxd.host=host, unique to the test).
func RemoveHostContainers(t testing.TB, docker *client.Client, host string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "io.sandboxd.host="+host))})
	if err != nil {
		t.Errorf("list test containers: %v", err)
		return
	}
	for _, c := range list {
		err := docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		// Gone, or being removed (by the daemon's reaper), is as good.
		if err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
			t.Errorf("remove test container %s: %v", c.ID, err)
		}
	}
}
