package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/testenv"
	"github.com/sandboxd/sandboxd/store"
)

// eventLag is how soon a change made behind sandboxd's back must reach the
// table through the event stream.
const eventLag = 2 * time.Second

// rowIs waits, up to within, for the row to satisfy cond.
func (e *env) rowIs(t *testing.T, id string, within time.Duration, what string, cond func(store.Sandbox) bool) store.Sandbox {
	t.Helper()
	var sb store.Sandbox
	testenv.Eventually(t, within, what, func() bool {
		var err error
		sb, err = e.st.Get(context.Background(), id)
		return err == nil && cond(sb)
	})
	return sb
}

// TestOutOfBandChanges: what happens to a container behind sandboxd's back
// reaches the table through the event stream.
func TestOutOfBandChanges(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	ctx := context.Background()

	killed := e.create(t, api.CreateRequest{ProjectID: "oob"})
	if err := e.docker.ContainerKill(ctx, killed.ContainerID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	sb := e.rowIs(t, killed.ID, eventLag, "docker kill makes the row exited 137", func(sb store.Sandbox) bool {
		return sb.State == store.Exited && sb.ExitCode != nil && *sb.ExitCode == 137
	})
	if sb.FinishedAt == nil {
		t.Errorf("exited row without finished_at")
	}

	removed := e.create(t, api.CreateRequest{ProjectID: "oob"})
	if err := e.docker.ContainerRemove(ctx, removed.ContainerID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	e.rowIs(t, removed.ID, eventLag, "docker rm -f makes the row removed/external", func(sb store.Sandbox) bool {
		return sb.State == store.Removed && sb.RemovalReason == store.ReasonExternal && sb.RemovedAt != nil
	})

	paused := e.create(t, api.CreateRequest{ProjectID: "oob"})
	if err := e.docker.ContainerPause(ctx, paused.ContainerID); err != nil {
		t.Fatal(err)
	}
	e.rowIs(t, paused.ID, eventLag, "docker pause makes the row paused", func(sb store.Sandbox) bool { return sb.State == store.Paused })
	if err := e.docker.ContainerUnpause(ctx, paused.ContainerID); err != nil {
		t.Fatal(err)
	}
	e.rowIs(t, paused.ID, eventLag, "docker unpause makes the row running", func(sb store.Sandbox) bool { return sb.State == store.Running })
}

// TestOOMKilled: a sandbox whose process passes its memory limit is
// recorded as OOM-killed, with the kernel's exit code.
func TestOOMKilled(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	// The shell keeps 64 MiB of output in memory, under a 16 MiB limit.
	sb := e.create(t, api.CreateRequest{ProjectID: "oom", Cmd: []string{"sh", "-c", `x="$(head -c 67108864 /dev/zero | tr '\0' a)"; sleep 600`},
		Limits: &api.LimitsRequest{MemoryBytes: ptr(int64(16 << 20))}})
	// How long the shell takes to reach the limit depends on the machine's
	// load; the event lag after that is what TestOutOfBandChanges bounds.
	got := e.rowIs(t, sb.ID, 30*time.Second, "the row says oom_killed", func(sb store.Sandbox) bool { return sb.OOMKilled && sb.State == store.Exited })
	if got.ExitCode == nil || *got.ExitCode != 137 {
		t.Errorf("exit code %v, want 137", got.ExitCode)
	}
}
