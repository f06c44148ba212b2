package daemon_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/google/uuid"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
	"github.com/sandboxd/sandboxd/daemon"
	"github.com/sandboxd/sandboxd/internal/testenv"
	"github.com/sandboxd/sandboxd/store"
)

// runContainer starts a container directly on the engine, as someone other
// than sandboxd would, with the given labels plus the test's own label.
func (e *env) runContainer(t *testing.T, labels map[string]string) string {
	t.Helper()
	ctx := context.Background()
	labels[testenv.TestLabel] = testenv.RunID
	resp, err := e.docker.ContainerCreate(ctx, &container.Config{Image: testenv.Image, Labels: labels},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.docker.ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true})
	})
	if err := e.docker.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	return resp.ID
}

func (e *env) running(t *testing.T, id string) bool {
	t.Helper()
	ins, err := e.docker.ContainerInspect(context.Background(), id)
	return err == nil && ins.State.Running
}

// TestReaperRemovesExpiredAndIdle: under a 1 s schedule, an expired and an
// idle sandbox are gone no later than their deadline + one period + 2 s.
func TestReaperRemovesExpiredAndIdle(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *daemon.Config) { c.ReapSchedule = "@every 1s" })
	ctx := context.Background()
	expiring := e.create(t, api.CreateRequest{ProjectID: "reap", TTLSeconds: ptr(int64(2))})
	idle := e.create(t, api.CreateRequest{ProjectID: "reap", IdleTimeoutSeconds: 2})
	busy := e.create(t, api.CreateRequest{ProjectID: "reap", IdleTimeoutSeconds: 60})

	for _, tc := range []struct {
		sb       api.Sandbox
		reason   store.Reason
		deadline func(store.Sandbox) time.Time
	}{
		{expiring, store.ReasonExpired, func(sb store.Sandbox) time.Time { return sb.ExpiresAt }},
		{idle, store.ReasonIdle, func(sb store.Sandbox) time.Time { return sb.LastActivityAt.Add(sb.IdleTimeout) }},
	} {
		row, _ := e.st.Get(ctx, tc.sb.ID)
		// The precision promised: deadline + one schedule period + 2 s.
		bound := time.Until(tc.deadline(row).Add(time.Second + 2*time.Second))
		got := e.rowIs(t, tc.sb.ID, bound, "reaped as "+string(tc.reason), func(sb store.Sandbox) bool {
			return sb.State == store.Removed
		})
		if got.RemovalReason != tc.reason {
			t.Errorf("sandbox %s removed for %s, want %s", tc.sb.ID, got.RemovalReason, tc.reason)
		}
		if _, err := e.docker.ContainerInspect(ctx, tc.sb.ContainerID); err == nil {
			t.Errorf("container of the %s sandbox still exists", tc.reason)
		}
		evs, _ := e.st.ListEvents(ctx, tc.sb.ID)
		if !slices.ContainsFunc(evs, func(ev store.Event) bool {
			return ev.Source == store.SourceReaper && ev.Attributes["reason"] == string(tc.reason)
		}) {
			t.Errorf("no reaper event with reason %s in the history", tc.reason)
		}
	}
	if row, _ := e.st.Get(ctx, busy.ID); row.State != store.Running {
		t.Errorf("a sandbox within its idle timeout was reaped: %s", row.State)
	}
}

// TestReaperOrphansAndStrangers: a container with our labels and no row is
// removed after its grace and not before; containers without both of our
// labels for this host are never touched.
func TestReaperOrphansAndStrangers(t *testing.T) {
	t.Parallel()
	const grace = 4 * time.Second
	e := start(t, func(c *daemon.Config) { c.ReapSchedule = "@every 1h"; c.OrphanGrace = grace })
	ctx := context.Background()
	orphanID := uuid.NewString()
	orphan := e.runContainer(t, map[string]string{daemon.LabelManaged: "true", daemon.LabelHost: e.cfg.HostID,
		daemon.LabelSandboxID: orphanID, daemon.LabelProject: "lost", daemon.LabelUserPrefix + "team": "a"})
	ins, err := e.docker.ContainerInspect(ctx, orphan)
	if err != nil {
		t.Fatal(err)
	}
	born, err := time.Parse(time.RFC3339Nano, ins.Created)
	if err != nil {
		t.Fatal(err)
	}
	strangers := []string{
		e.runContainer(t, map[string]string{}),
		e.runContainer(t, map[string]string{daemon.LabelManaged: "true"}),
		e.runContainer(t, map[string]string{daemon.LabelManaged: "true", daemon.LabelHost: "another-host", daemon.LabelSandboxID: uuid.NewString()}),
		e.runContainer(t, map[string]string{daemon.LabelHost: e.cfg.HostID, daemon.LabelSandboxID: uuid.NewString()}),
	}
	// Passes within the grace leave the orphan alone.
	for time.Since(born) < grace-300*time.Millisecond {
		res, err := e.c.Reap(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Actions) != 0 {
			t.Fatalf("pass within the grace acted: %+v", res.Actions)
		}
		if !e.running(t, orphan) {
			t.Fatal("orphan removed before its grace")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Past the grace, a pass removes it, and records it.
	testenv.Eventually(t, 10*time.Second, "the orphan is reaped", func() bool {
		res, err := e.c.Reap(ctx, false)
		return err == nil && len(res.Actions) == 1 && res.Actions[0].Reason == "orphaned" && res.Actions[0].Done
	})
	if _, err := e.docker.ContainerInspect(ctx, orphan); err == nil {
		t.Error("orphan container still exists")
	}
	row, err := e.st.Get(ctx, orphanID)
	if err != nil || row.State != store.Removed || row.RemovalReason != store.ReasonOrphaned || row.ProjectID != "lost" ||
		row.Labels["team"] != "a" || row.ContainerID != orphan {
		t.Errorf("orphan's row = %+v, %v", row, err)
	}
	// Several more passes: the strangers keep running.
	for range 3 {
		if _, err := e.c.Reap(ctx, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range strangers {
		if !e.running(t, id) {
			t.Errorf("container %.12s without our labels for this host was touched", id)
		}
	}
}

// TestReaperDryRun changes nothing and reports exactly what a real pass
// then does.
func TestReaperDryRun(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *daemon.Config) { c.ReapSchedule = "@every 1h" })
	ctx := context.Background()
	a := e.create(t, api.CreateRequest{ProjectID: "dry", TTLSeconds: ptr(int64(1))})
	b := e.create(t, api.CreateRequest{ProjectID: "dry", TTLSeconds: ptr(int64(1))})
	keep := e.create(t, api.CreateRequest{ProjectID: "dry"})
	testenv.Eventually(t, 5*time.Second, "both sandboxes expire", func() bool {
		row, _ := e.st.Get(ctx, b.ID)
		return !time.Now().Before(row.ExpiresAt)
	})
	plan, err := e.c.Reap(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range []api.Sandbox{a, b, keep} {
		if !e.running(t, sb.ContainerID) {
			t.Errorf("dry run stopped %s", sb.ID)
		}
		if row, _ := e.st.Get(ctx, sb.ID); row.State != store.Running {
			t.Errorf("dry run changed %s to %s", sb.ID, row.State)
		}
	}
	done, err := e.c.Reap(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	key := func(as []api.ReapAction) []string {
		var out []string
		for _, x := range as {
			out = append(out, x.Reason+" "+x.SandboxID+" "+x.ContainerID)
		}
		slices.Sort(out)
		return out
	}
	if !plan.DryRun || !slices.Equal(key(plan.Actions), key(done.Actions)) || len(done.Actions) != 2 {
		t.Errorf("dry run planned %v, the real pass did %v", key(plan.Actions), key(done.Actions))
	}
	for _, x := range done.Actions {
		if !x.Done {
			t.Errorf("action %+v not done", x)
		}
	}
}

// TestReaperHostLock: while another daemon's pass holds this host's lock,
// a pass does not run.
func TestReaperHostLock(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *daemon.Config) { c.ReapSchedule = "@every 1h" })
	ctx := context.Background()
	unlock, ok, err := e.st.LockHost(ctx, e.cfg.HostID)
	if err != nil || !ok {
		t.Fatalf("take the lock: %v %v", ok, err)
	}
	if _, err := e.c.Reap(ctx, false); !client.IsConflict(err) {
		t.Errorf("pass while the lock is held: %v, want conflict", err)
	}
	unlock()
	if _, err := e.c.Reap(ctx, false); err != nil {
		t.Errorf("pass after the lock was released: %v", err)
	}
}
