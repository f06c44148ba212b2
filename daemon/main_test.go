package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	dockerclient "github.com/docker/docker/client"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
	"github.com/sandboxd/sandboxd/daemon"
	"github.com/sandboxd/sandboxd/internal/testenv"
	"github.com/sandboxd/sandboxd/store"
)

func TestMain(m *testing.M) {
	// The peer-credential test runs this binary again as another uid, to
	// be a caller that the daemon must refuse.
	if sock := os.Getenv("SANDBOXD_TEST_CLIENT_SOCKET"); sock != "" {
		os.Exit(actAsClient(sock))
	}
	os.Exit(m.Run())
}

// actAsClient tries a health check and a create, and prints what came back.
func actAsClient(sock string) int {
	c := &client.Client{Socket: sock}
	ctx := context.Background()
	out := map[string]string{}
	if _, err := c.Health(ctx); err != nil {
		out["health"] = err.Error()
	} else {
		out["health"] = "ok"
	}
	_, _, err := c.Create(ctx, api.CreateRequest{ProjectID: "peer", Image: testenv.Image})
	var ce *client.Error
	if errors.As(err, &ce) {
		out["create"] = ce.Code
	} else {
		out["create"] = fmt.Sprint(err)
	}
	json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

// env is one running daemon with its own database, socket and host id, so
// tests share nothing and can run in parallel.
type env struct {
	cfg    daemon.Config
	c      *client.Client
	st     *store.Store
	docker *dockerclient.Client
	dbURL  string
}

// start runs a daemon for the test. Every container it makes carries the
// test's unique host id, and is removed when the test ends.
func start(t *testing.T, mutate func(*daemon.Config)) *env {
	t.Helper()
	docker := testenv.Docker(t)
	st, url := testenv.Store(t)
	// The socket's folder is open to all, so that the socket's own mode
	// and the peer check are what decide who gets in.
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	cfg := daemon.Config{
		Socket:        filepath.Join(dir, "sandboxd.sock"),
		DatabaseURL:   url,
		HostID:        "test-" + testenv.RandomHex(6),
		AllowImages:   []string{"sandboxd-test/*"},
		MaxPerProject: 8,
		StopTimeout:   time.Second,
		Logger:        slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	if cfg.DockerHost != "" {
		// A private engine of the test's own (testenv.PrivateDocker).
		var err error
		if docker, err = dockerclient.NewClientWithOpts(dockerclient.WithHost(cfg.DockerHost), dockerclient.WithAPIVersionNegotiation()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { docker.Close() })
	}
	e := &env{cfg: cfg, c: &client.Client{Socket: cfg.Socket}, st: st, docker: docker, dbURL: url}
	if cfg.DockerHost == "" {
		// On a private engine the containers go with the engine, which the
		// test stops and deletes (testenv.StartPrivateDocker).
		t.Cleanup(func() { testenv.RemoveHostContainers(t, docker, cfg.HostID) })
	}

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, cfg, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("daemon not ready within 30s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon stopped with: %v", err)
		}
	})
	return e
}

// testWriter sends the daemon's log to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// containers lists the containers of host id, running or not.
func containers(t *testing.T, docker *dockerclient.Client, host string) []container.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", daemon.LabelHost+"="+host))})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	return list
}

// create makes a sandbox that must succeed.
func (e *env) create(t *testing.T, req api.CreateRequest) api.Sandbox {
	t.Helper()
	if req.Image == "" {
		req.Image = testenv.Image
	}
	if req.ProjectID == "" {
		req.ProjectID = "proj-1"
	}
	sb, created, err := e.c.Create(context.Background(), req)
	if err != nil || !created {
		t.Fatalf("create: created=%v err=%v", created, err)
	}
	return sb
}

// rows counts the rows of the daemon's host, removed and failed included.
func (e *env) rows(t *testing.T) int {
	t.Helper()
	sbs, err := e.st.List(context.Background(), store.Filter{HostID: e.cfg.HostID, All: true})
	if err != nil {
		t.Fatal(err)
	}
	return len(sbs)
}

func ptr[T any](v T) *T { return &v }

func storeFilterAll(e *env) store.Filter { return store.Filter{HostID: e.cfg.HostID, All: true} }

var containerRemoveForce = container.RemoveOptions{Force: true}
