package daemon_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
	"github.com/sandboxd/sandboxd/daemon"
	"github.com/sandboxd/sandboxd/internal/testenv"
	"github.com/sandboxd/sandboxd/store"
)

// mismatch compares the engine's managed containers of the test's host with
// the table's live rows, and describes every difference ("" when none).
func (e *env) mismatch(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	engine := map[string]string{}
	for _, c := range containers(t, e.docker, e.cfg.HostID) {
		engine[c.ID] = c.State
	}
	rows, err := e.st.List(ctx, store.Filter{HostID: e.cfg.HostID})
	if err != nil {
		return "table unreadable: " + err.Error()
	}
	var diffs []string
	for _, r := range rows {
		st, ok := engine[r.ContainerID]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("row %s (%s) has no container", r.ID, r.State))
		case st != string(r.State) && !(r.State == store.Pooled && st == "running"):
			diffs = append(diffs, fmt.Sprintf("row %s is %s, container %s", r.ID, r.State, st))
		}
		delete(engine, r.ContainerID)
	}
	for id, st := range engine {
		diffs = append(diffs, fmt.Sprintf("container %.12s (%s) has no live row", id, st))
	}
	slices.Sort(diffs)
	return strings.Join(diffs, "; ")
}

// converges waits for the table to match the engine.
func (e *env) converges(t *testing.T, within time.Duration, after string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		diff := e.mismatch(t)
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the table does not match the engine %s, within %s: %s", after, within, diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDockerRestart: the engine goes away while sandboxes live; health
// shows the outage, creates answer 503, and once the engine is back the
// table matches it exactly.
func TestDockerRestart(t *testing.T) {
	t.Parallel()
	dk := testenv.StartPrivateDocker(t)
	e := start(t, func(c *daemon.Config) { c.DockerHost = dk.Host })
	ctx := context.Background()
	var sbs []api.Sandbox
	for range 3 {
		sbs = append(sbs, e.create(t, api.CreateRequest{ProjectID: "restart"}))
	}
	if err := e.docker.ContainerKill(ctx, sbs[0].ContainerID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	e.converges(t, 5*time.Second, "before the restart")

	dk.Stop()
	testenv.Eventually(t, 10*time.Second, "health reports the event stream down", func() bool {
		h, err := e.c.Health(ctx)
		return client.IsUnavailable(err) && h.Docker != "ok" && strings.HasPrefix(h.Events, "down since")
	})
	if _, _, err := e.c.Create(ctx, api.CreateRequest{ProjectID: "restart", Image: testenv.Image}); !client.IsUnavailable(err) {
		t.Errorf("create while the engine is down: %v, want unavailable", err)
	}
	dk.Start()
	testenv.Eventually(t, 20*time.Second, "health is ok again", func() bool {
		h, err := e.c.Health(ctx)
		return err == nil && h.Events == "ok"
	})
	// The engine stopped every container with it: the table must say so.
	e.converges(t, 10*time.Second, "after the restart")
	for _, sb := range sbs {
		if row, _ := e.st.Get(ctx, sb.ID); row.State != store.Exited {
			t.Errorf("sandbox %s is %s after the engine restart, want exited", sb.ID, row.State)
		}
	}
	// And the daemon works again.
	sb := e.create(t, api.CreateRequest{ProjectID: "restart-2"})
	if _, err := e.c.Delete(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	e.converges(t, 5*time.Second, "after a create and a release")
}

// TestDatabaseOutage: PostgreSQL is cut for 10 s while containers change.
// The daemon keeps answering (503 for what needs the database) and the table
// catches up once the database is back.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	proxy := testenv.StartPGProxy(t)
	e := start(t, func(c *daemon.Config) {
		u, err := url.Parse(c.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("host", proxy.Dir)
		u.RawQuery = q.Encode()
		c.DatabaseURL = u.String()
	})
	ctx := context.Background()
	var sbs []api.Sandbox
	for range 4 {
		sbs = append(sbs, e.create(t, api.CreateRequest{ProjectID: "outage"}))
	}

	proxy.Cut()
	e.docker.ContainerKill(ctx, sbs[0].ContainerID, "SIGKILL")
	e.docker.ContainerKill(ctx, sbs[1].ContainerID, "SIGTERM")
	e.docker.ContainerRemove(ctx, sbs[2].ContainerID, containerRemoveForce)
	// For the length of the outage the daemon must stay up and say what is
	// wrong; the test checks it all along instead of sleeping.
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) {
		h, err := e.c.Health(ctx)
		if !client.IsUnavailable(err) || h.Database == "ok" || h.Docker != "ok" {
			t.Fatalf("health during the outage: %+v, %v", h, err)
		}
		if _, err := e.c.Get(ctx, sbs[3].ID); !client.IsUnavailable(err) {
			t.Fatalf("get during the outage: %v, want unavailable", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	proxy.Heal()
	e.converges(t, 15*time.Second, "after the outage")
	want := map[string]store.State{sbs[0].ID: store.Exited, sbs[1].ID: store.Exited, sbs[2].ID: store.Removed, sbs[3].ID: store.Running}
	for id, st := range want {
		if row, err := e.st.Get(ctx, id); err != nil || row.State != st {
			t.Errorf("sandbox %s is %s (%v), want %s", id, row.State, err, st)
		}
	}
	if row, _ := e.st.Get(ctx, sbs[0].ID); row.ExitCode == nil || *row.ExitCode != 137 {
		t.Errorf("exit code after the outage: %v, want 137 from the queued die event", row.ExitCode)
	}
}
