package daemon_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
	"github.com/sandboxd/sandboxd/daemon"
	"github.com/sandboxd/sandboxd/internal/testenv"
	"github.com/sandboxd/sandboxd/store"
)

// TestCreateFailures: a create that fails at the engine leaves its row
// failed with the error text and no container behind, and frees its
// idempotency key. (A failed start goes through the same undo, removing the
// container made; with the init process in every sandbox, a bad cmd fails
// inside the container, after a successful start, so it cannot provoke one.)
func TestCreateFailures(t *testing.T) {
	t.Parallel()
	t.Run("create refused by the engine", func(t *testing.T) {
		t.Parallel()
		// An OCI runtime the engine does not know: the container is never made.
		e := start(t, func(c *daemon.Config) { c.Runtime = "no-such-runtime" })
		// A daemon misconfigured this way answers 500 internal: the fault is
		// the host's, not the caller's.
		checkFailedCreate(t, e, api.CreateRequest{ProjectID: "fail", Image: testenv.Image, IdempotencyKey: "k"}, client.IsInternal, "Unknown runtime")
	})
}

func checkFailedCreate(t *testing.T, e *env, req api.CreateRequest, is func(error) bool, says string) {
	t.Helper()
	ctx := context.Background()
	_, _, err := e.c.Create(ctx, req)
	if err == nil || !is(err) || !strings.Contains(err.Error(), says) {
		t.Fatalf("create = %v, want an error saying %q", err, says)
	}
	if n := len(containers(t, e.docker, e.cfg.HostID)); n != 0 {
		t.Errorf("a failed create left %d containers", n)
	}
	sbs, err := e.st.List(ctx, store.Filter{HostID: e.cfg.HostID, All: true})
	if err != nil || len(sbs) != 1 {
		t.Fatalf("rows = %+v, %v; want the one failed row", sbs, err)
	}
	if sb := sbs[0]; sb.State != store.Failed || sb.RemovalReason != store.ReasonFailed || !strings.Contains(sb.Error, says) {
		t.Errorf("row = state %s reason %s error %q", sb.State, sb.RemovalReason, sb.Error)
	}
	// The failed attempt does not hold the key: the retry is a new create
	// (and fails the same way), not an answer with the failed sandbox.
	if _, _, err := e.c.Create(ctx, req); err == nil || !is(err) {
		t.Errorf("retry with the same key: %v", err)
	}
}
