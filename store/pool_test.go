package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/sandboxd/sandboxd/internal/testenv"
	"github.com/sandboxd/sandboxd/store"
)

func pooled(t *testing.T, st *store.Store, image string) store.Sandbox {
	t.Helper()
	sb := newSandbox("")
	sb.ProjectID, sb.Image, sb.ContainerID = "", image, containerID(sb.ID)
	got, err := st.InsertPooled(context.Background(), sb)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.Pooled || got.ProjectID != "" || got.AcquiredFrom != "pool" {
		t.Fatalf("pooled row = %+v", got)
	}
	return got
}

// TestClaimPooled: 50 concurrent claims against 10 ready sandboxes hand out
// each once; the rest find none ready.
func TestClaimPooled(t *testing.T) {
	t.Parallel()
	st, _ := testenv.Store(t)
	ctx := context.Background()
	ready := map[string]bool{}
	for range 10 {
		ready[pooled(t, st, testenv.Image).ID] = true
	}
	pooled(t, st, "other:image")

	var mu sync.Mutex
	got := map[string]int{}
	none := 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			req := newSandbox("claims")
			sb, out, err := st.ClaimPooled(ctx, req, store.Quota{PerProject: 100})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("claim: %v", err)
			case out == store.Claimed:
				got[sb.ID]++
				if sb.ProjectID != "claims" || sb.State != store.Running || sb.AcquiredFrom != "pool" || sb.Labels["purpose"] != "test" {
					t.Errorf("claimed row = %+v", sb)
				}
			case out == store.NoneReady:
				none++
			}
		})
	}
	wg.Wait()
	if len(got) != 10 || none != 40 {
		t.Errorf("%d claimed, %d found none; want 10 and 40", len(got), none)
	}
	for id, n := range got {
		if n != 1 || !ready[id] {
			t.Errorf("sandbox %s handed out %d times (from the pool: %v)", id, n, ready[id])
		}
	}
	left, err := st.CountPooled(ctx, host)
	if err != nil || left[testenv.Image] != 0 || left["other:image"] != 1 {
		t.Errorf("pooled left = %v, %v", left, err)
	}
}

// TestClaimQuotaAndIdempotency: pooled sandboxes do not count toward a
// quota, a claim does, and a repeated key returns the first sandbox.
func TestClaimQuotaAndIdempotency(t *testing.T) {
	t.Parallel()
	st, _ := testenv.Store(t)
	ctx := context.Background()
	for range 3 {
		pooled(t, st, testenv.Image)
	}
	q := store.Quota{PerProject: 1, PerHost: 2}
	req := newSandbox("quota")
	req.IdempotencyKey = "k"
	first, out, err := st.ClaimPooled(ctx, req, q)
	if err != nil || out != store.Claimed {
		t.Fatalf("first claim: %v %v", out, err)
	}
	// Retiring it now must not take it from its new owner.
	if _, ok, err := st.RetirePooled(ctx, first.ID); err != nil || ok {
		t.Errorf("retire a claimed sandbox: ok=%v err=%v, want refused", ok, err)
	}
	again, out, err := st.ClaimPooled(ctx, req, q)
	if err != nil || out != store.Existing || again.ID != first.ID {
		t.Errorf("repeated key: %v %v %s", out, err, again.ID)
	}
	if _, _, err := st.ClaimPooled(ctx, newSandbox("quota"), q); !isQuota(err) {
		t.Errorf("claim past the project quota: %v", err)
	}
	if n, _ := st.CountPooled(ctx, host); n[testenv.Image] != 2 {
		t.Errorf("pooled after refused claims: %d, want 2", n[testenv.Image])
	}
}

func isQuota(err error) bool {
	_, ok := err.(*store.QuotaError)
	return ok
}
