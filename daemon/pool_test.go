package daemon_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
	"github.com/sandboxd/sandboxd/daemon"
	"github.com/sandboxd/sandboxd/internal/testenv"
	"github.com/sandboxd/sandboxd/store"
)

// poolReady waits until n sandboxes of the image are pooled.
func (e *env) poolReady(t *testing.T, n int) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, "the pool fills", func() bool {
		counts, err := e.st.CountPooled(context.Background(), e.cfg.HostID)
		return err == nil && counts[testenv.Image] >= n
	})
}

// TestPoolClaim: a create the pool can serve gets a ready sandbox with the
// request's project, expiry and labels; one with its own cmd never does.
func TestPoolClaim(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *daemon.Config) { c.Pools = map[string]int{testenv.Image: 2} })
	ctx := context.Background()
	e.poolReady(t, 2)

	sb, created, err := e.c.Create(ctx, api.CreateRequest{ProjectID: "warm", Image: testenv.Image, TTLSeconds: ptr(int64(120)),
		Labels: map[string]string{"k": "v"}, Limits: &api.LimitsRequest{MemoryBytes: ptr(int64(128 << 20))}})
	if err != nil || !created || sb.AcquiredFrom != "pool" || sb.State != "running" {
		t.Fatalf("claim = %+v, created %v, %v", sb, created, err)
	}
	row, _ := e.st.Get(ctx, sb.ID)
	if row.ProjectID != "warm" || row.Labels["k"] != "v" || row.MemoryBytes != 128<<20 ||
		time.Until(row.ExpiresAt) < 100*time.Second || row.State != store.Running {
		t.Errorf("claimed row = %+v", row)
	}
	ins, err := e.docker.ContainerInspect(ctx, sb.ContainerID)
	if err != nil || ins.HostConfig.Memory != 128<<20 || !ins.HostConfig.ReadonlyRootfs || ins.HostConfig.NetworkMode != "none" {
		t.Errorf("claimed container: memory %d, %v", ins.HostConfig.Memory, err)
	}
	res, err := e.c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: []string{"echo", "warm"}})
	if err != nil || res.Stdout != "warm\n" {
		t.Errorf("exec in a claimed sandbox: %+v, %v", res, err)
	}

	cold, _, err := e.c.Create(ctx, api.CreateRequest{ProjectID: "warm", Image: testenv.Image, Cmd: []string{"sleep", "600"}})
	if err != nil || cold.AcquiredFrom != "cold" {
		t.Errorf("create with its own cmd: %+v, %v; want a cold create", cold, err)
	}
	// Pooled sandboxes are no one's: not in the list of live sandboxes.
	list, _ := e.c.List(ctx, client.ListOptions{})
	for _, s := range list {
		if s.State == "pooled" {
			t.Errorf("pooled sandbox %s listed", s.ID)
		}
	}
	// The pool refills after the claim, and says how it served.
	e.poolReady(t, 2)
	pools, err := e.c.Pools(ctx)
	if err != nil || len(pools) != 1 || pools[0].Image != testenv.Image || pools[0].Target != 2 || pools[0].Claims != 1 || pools[0].Misses != 0 {
		t.Errorf("pools = %+v, %v; want one claim and no miss", pools, err)
	}
}

// TestPoolConcurrentClaims: 50 creates at once against a pool of 10 never
// hand out one sandbox twice, and the pool serves at least its 10.
func TestPoolConcurrentClaims(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *daemon.Config) {
		c.Pools = map[string]int{testenv.Image: 10}
		c.MaxPerProject, c.MaxSandboxes = 64, 128
	})
	ctx := context.Background()
	e.poolReady(t, 10)
	var mu sync.Mutex
	seen := map[string]int{}
	fromPool, cold := 0, 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			sb, created, err := e.c.Create(ctx, api.CreateRequest{ProjectID: "burst", Image: testenv.Image})
			mu.Lock()
			defer mu.Unlock()
			if err != nil || !created {
				t.Errorf("create: %v", err)
				return
			}
			seen[sb.ID]++
			if sb.AcquiredFrom == "pool" {
				fromPool++
			} else {
				cold++
			}
		})
	}
	wg.Wait()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("sandbox %s handed out %d times", id, n)
		}
	}
	// The pool refills while the burst runs, so it may serve more than 10.
	if fromPool < 10 || fromPool+cold != 50 || len(seen) != 50 {
		t.Errorf("%d from the pool, %d cold, %d distinct; want at least 10 from the pool and 50 in all", fromPool, cold, len(seen))
	}
	t.Logf("%d from the pool, %d cold", fromPool, cold)
}

// TestPoolCrashMidRefill: the daemon dies between a pool container's create
// and its row; after a restart no orphan is left once the grace has passed.
func TestPoolCrashMidRefill(t *testing.T) {
	t.Parallel()
	docker := testenv.Docker(t)
	bin := buildDaemon(t, "sandboxd_crashpoints")
	st, dbURL := testenv.Store(t)
	sock := filepath.Join(t.TempDir(), "s.sock")
	e := &env{cfg: daemon.Config{HostID: "test-pool-" + testenv.RandomHex(4), Socket: sock},
		st: st, docker: docker, c: &client.Client{Socket: sock}}
	t.Cleanup(func() { testenv.RemoveHostContainers(t, docker, e.cfg.HostID) })
	args := []string{"serve", "--socket", sock, "--database-url", dbURL, "--host-id", e.cfg.HostID,
		"--allow-image", "sandboxd-test/*", "--pool", testenv.Image + "=2", "--reap-schedule", "@every 1s",
		"--orphan-grace", "1s", "--resync-interval", "1s", "--log-format", "text"}
	crashing := runDaemonNoWait(t, bin, args, "pool-after-create")
	if code := crashing.wait(t); code != -1 {
		t.Fatalf("daemon exited with %d, want death by SIGKILL at the crash point", code)
	}
	runDaemon(t, bin, args, "")
	e.poolReady(t, 2)
	e.converges(t, 15*time.Second, "after a crash mid-refill")
}

// TestPoolRetiredWhenUnconfigured: pool sandboxes of an image no longer
// pooled are retired by a daemon started without that pool.
func TestPoolRetiredWhenUnconfigured(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *daemon.Config) { c.Pools = map[string]int{testenv.Image: 1} })
	e.poolReady(t, 1)
	rows, err := e.st.List(context.Background(), store.Filter{HostID: e.cfg.HostID, States: []store.State{store.Pooled}})
	if err != nil || len(rows) != 1 {
		t.Fatalf("pooled rows: %d, %v", len(rows), err)
	}
	// A second daemon for the same host and database, with no pools.
	second := e.cfg
	second.Pools = nil
	second.Socket += ".2"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, second, nil) }()
	defer func() {
		cancel()
		<-done
	}()
	testenv.Eventually(t, 30*time.Second, "the pool sandbox is retired", func() bool {
		sb, err := e.st.Get(context.Background(), rows[0].ID)
		return err == nil && sb.State == store.Removed && sb.RemovalReason == store.ReasonRetired
	})
}

// TestPoolStopMidRefill: a daemon stopped while it fills its pool leaves
// behind only containers it recorded; a create under way when it stopped is
// finished and removed, not dropped with its container still on the engine.
func TestPoolStopMidRefill(t *testing.T) {
	t.Parallel()
	docker := testenv.Docker(t)
	st, url := testenv.Store(t)
	cfg := daemon.Config{Socket: filepath.Join(t.TempDir(), "s.sock"), DatabaseURL: url,
		HostID: "test-poolstop-" + testenv.RandomHex(4), AllowImages: []string{"sandboxd-test/*"},
		StopTimeout: time.Second, Pools: map[string]int{testenv.Image: 6}}
	t.Cleanup(func() { testenv.RemoveHostContainers(t, docker, cfg.HostID) })
	e := &env{cfg: cfg, st: st, docker: docker}
	for round := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- daemon.Run(ctx, cfg, nil) }()
		// Stop as soon as a refill has made a container: others are under way.
		before := len(containers(t, docker, cfg.HostID))
		testenv.Eventually(t, 30*time.Second, "a refill starts", func() bool {
			return len(containers(t, docker, cfg.HostID)) > before
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("round %d: daemon stopped with: %v", round, err)
		}
		if diff := e.mismatch(t); diff != "" {
			t.Fatalf("round %d: after the stop the engine and the table differ: %s", round, diff)
		}
	}
}
