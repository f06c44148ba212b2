package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
	"github.com/sandboxd/sandboxd/daemon"
	"github.com/sandboxd/sandboxd/internal/testenv"
	"github.com/sandboxd/sandboxd/store"
)

// faultScale is the size of the fault suite: a short form in `make test`,
// the full one (64 clients, 10 s faults) in `make fault`.
func faultScale() (clients int, outage time.Duration) {
	if os.Getenv("SANDBOXD_FAULT_LONG") != "" {
		return 64, 10 * time.Second
	}
	return 8, 3 * time.Second
}

// load is a set of clients creating, exec'ing and releasing sandboxes until
// stopped, remembering every sandbox they were told was created.
type load struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	created map[string]bool
	ok      atomic.Int64
	refused atomic.Int64 // quota_exceeded, unavailable, or no daemon there
	other   []error
}

func startLoad(c *client.Client, clients int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, created: map[string]bool{}}
	for range clients {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				if err := l.once(ctx, c); err != nil {
					time.Sleep(50 * time.Millisecond) // back off, as a real client would
				}
			}
		})
	}
	return l
}

func (l *load) once(ctx context.Context, c *client.Client) error {
	call, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	sb, created, err := c.Create(call, api.CreateRequest{ProjectID: "load", Image: testenv.Image})
	if created {
		l.mu.Lock()
		l.created[sb.ID] = true
		l.mu.Unlock()
	}
	if err == nil {
		_, err = c.Exec(call, sb.ID, api.ExecRequest{Cmd: []string{"echo", "hi"}})
	}
	if sb.ID != "" {
		if _, derr := c.Delete(call, sb.ID); err == nil {
			err = derr
		}
	}
	var ce *client.Error
	switch {
	case err == nil:
		l.ok.Add(1)
	case client.IsQuotaExceeded(err), client.IsUnavailable(err), client.IsConflict(err), !errors.As(err, &ce):
		// Refusals a fault explains: the quota, a dependency away (503), a
		// sandbox whose engine went away (409), or no daemon answering.
		l.refused.Add(1)
	default:
		l.mu.Lock()
		l.other = append(l.other, err)
		l.mu.Unlock()
	}
	return err
}

// progresses waits for round trips to succeed again after a fault.
func (l *load) progresses(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "the load makes progress again", func() bool {
		before := l.ok.Load()
		time.Sleep(500 * time.Millisecond)
		return l.ok.Load() > before
	})
}

func (l *load) stop(t *testing.T) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	t.Logf("load of %s: %d round trips, %d refused during faults, %d other errors, %d sandboxes created",
		t.Name(), l.ok.Load(), l.refused.Load(), len(l.other), len(l.created))
	for i, err := range l.other {
		if i < 5 {
			t.Errorf("load error not explained by the fault: %v", err)
		}
	}
}

// recovers checks the end of a fault: the load makes progress again, and
// once it stops the table matches the engine and no created sandbox lost
// its row.
func (l *load) recovers(t *testing.T, e *env, after string) {
	t.Helper()
	l.progresses(t)
	l.stop(t)
	e.converges(t, 30*time.Second, after)
	l.noRowLost(t, e.st)
}

// noRowLost checks that every sandbox the clients were told was created
// still has its row.
func (l *load) noRowLost(t *testing.T, st *store.Store) {
	t.Helper()
	for id := range l.created {
		if _, err := st.Get(context.Background(), id); err != nil {
			t.Errorf("row of created sandbox %s lost: %v", id, err)
		}
	}
}

// stranger is a container without our labels that no fault may touch.
func (e *env) stranger(t *testing.T) string {
	return e.runContainer(t, map[string]string{"purpose": "bystander"})
}

func loadQuota(c *daemon.Config) {
	c.MaxPerProject = 8
	c.ReapSchedule = "@every 1s"
	c.OrphanGrace = time.Second
	c.CreateTimeout = 5 * time.Second
	c.ResyncInterval = time.Second
}

// TestFaultDockerdUnderLoad stops the engine in the middle of the load.
func TestFaultDockerdUnderLoad(t *testing.T) {
	t.Parallel()
	clients, outage := faultScale()
	dk := testenv.StartPrivateDocker(t)
	e := start(t, func(c *daemon.Config) { loadQuota(c); c.DockerHost = dk.Host })
	bystander := e.stranger(t)
	l := startLoad(e.c, clients)
	e.rowCountAtLeast(t, 3)
	dk.Stop()
	testenv.Eventually(t, outage+5*time.Second, "health shows the engine away", func() bool {
		h, _ := e.c.Health(context.Background())
		return h.Docker != "ok"
	})
	outageEnds := time.Now().Add(outage)
	for time.Now().Before(outageEnds) {
		if _, err := e.c.Health(context.Background()); err == nil {
			t.Fatal("health ok while the engine is stopped")
		}
		time.Sleep(200 * time.Millisecond)
	}
	dk.Start()
	l.recovers(t, e, "after the engine came back")
	// The engine's stop stopped it, as every container; sandboxd must not
	// have removed it.
	if _, err := e.docker.ContainerInspect(context.Background(), bystander); err != nil {
		t.Errorf("a container without our labels was removed: %v", err)
	}
}

// TestFaultDatabaseUnderLoad cuts PostgreSQL in the middle of the load.
func TestFaultDatabaseUnderLoad(t *testing.T) {
	t.Parallel()
	clients, outage := faultScale()
	proxy := testenv.StartPGProxy(t)
	e := start(t, func(c *daemon.Config) {
		loadQuota(c)
		u, _ := url.Parse(c.DatabaseURL)
		q := u.Query()
		q.Set("host", proxy.Dir)
		u.RawQuery = q.Encode()
		c.DatabaseURL = u.String()
	})
	bystander := e.stranger(t)
	l := startLoad(e.c, clients)
	e.rowCountAtLeast(t, 3)
	proxy.Cut()
	outageEnds := time.Now().Add(outage)
	for time.Now().Before(outageEnds) {
		h, err := e.c.Health(context.Background())
		if !client.IsUnavailable(err) || h.Database == "ok" {
			t.Fatalf("health during the database outage: %+v, %v", h, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	proxy.Heal()
	l.recovers(t, e, "after the database came back")
	if !e.running(t, bystander) {
		t.Error("a container without our labels was stopped")
	}
}

// rowCountAtLeast waits for the load to have made n sandboxes.
func (e *env) rowCountAtLeast(t *testing.T, n int) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, fmt.Sprintf("the load made %d sandboxes", n), func() bool {
		return e.rows(t) >= n
	})
}

// TestAbuseInsideSandboxes: a fork bomb, a memory hog and a full workdir
// stay inside their sandboxes; a bystander sandbox and the daemon carry on.
func TestAbuseInsideSandboxes(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	ctx := context.Background()
	bystander := e.create(t, api.CreateRequest{ProjectID: "abuse-inside"})
	// A fifth of a CPU each, as a host packing sandboxes would give them:
	// the CPU bound is the engine's to enforce, and the other tests of the
	// suite share this machine's 2 cores.
	cpu := ptr(int64(2e8))
	bomb := e.create(t, api.CreateRequest{ProjectID: "abuse-inside", Limits: &api.LimitsRequest{Pids: ptr(int64(32)), NanoCPUs: cpu}})
	hog := e.create(t, api.CreateRequest{ProjectID: "abuse-inside", Limits: &api.LimitsRequest{MemoryBytes: ptr(int64(32 << 20)), NanoCPUs: cpu}})
	filler := e.create(t, api.CreateRequest{ProjectID: "abuse-inside", Limits: &api.LimitsRequest{NanoCPUs: cpu}})

	var wg sync.WaitGroup
	results := map[string]api.ExecResult{}
	var mu sync.Mutex
	run := func(name string, sb api.Sandbox, script string) {
		wg.Go(func() {
			res, err := e.c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: []string{"sh", "-c", script}, TimeoutSeconds: ptr(int64(10))})
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			mu.Lock()
			results[name] = res
			mu.Unlock()
		})
	}
	run("bomb", bomb, `b() { b | b & }; b; sleep 5`)
	run("hog", hog, `x="$(head -c 134217728 /dev/zero | tr '\0' a)"; echo survived`)
	run("filler", filler, `dd if=/dev/zero of=/workspace/fill bs=1M count=1024 2>&1; echo rc=$?`)
	// Meanwhile the daemon answers and the bystander works.
	for range 5 {
		if _, err := e.c.Health(ctx); err != nil {
			t.Errorf("health during the abuse: %v", err)
		}
		res, err := e.c.Exec(ctx, bystander.ID, api.ExecRequest{Cmd: []string{"echo", "fine"}})
		if err != nil || res.Stdout != "fine\n" {
			t.Errorf("bystander during the abuse: %+v, %v", res, err)
		}
	}
	wg.Wait()
	if r := results["filler"]; !strings.Contains(r.Stdout, "No space left on device") {
		t.Errorf("filling the workdir: %q; want it to stop at the tmpfs bound", r.Stdout)
	}
	if r := results["hog"]; strings.Contains(r.Stdout, "survived") && r.ExitCode == 0 {
		t.Errorf("a 128 MiB string in a 32 MiB sandbox survived: %+v", r)
	}
	ins, err := e.docker.ContainerInspect(ctx, bomb.ContainerID)
	if err != nil || ins.HostConfig.PidsLimit == nil || *ins.HostConfig.PidsLimit != 32 {
		t.Errorf("fork bomb sandbox: %v", err)
	}
	res, err := e.c.Exec(ctx, bystander.ID, api.ExecRequest{Cmd: []string{"echo", "fine"}})
	if err != nil || res.Stdout != "fine\n" {
		t.Errorf("bystander after the abuse: %+v, %v", res, err)
	}

}

// TestFaultKillDaemonUnderLoad kills sandboxd with SIGKILL in the middle of
// the load and starts it again.
func TestFaultKillDaemonUnderLoad(t *testing.T) {
	t.Parallel()
	clients, outage := faultScale()
	docker := testenv.Docker(t)
	bin := buildDaemon(t)
	st, dbURL := testenv.Store(t)
	sock := filepath.Join(t.TempDir(), "s.sock")
	e := &env{cfg: daemon.Config{HostID: "test-kill-" + testenv.RandomHex(4), Socket: sock},
		st: st, docker: docker, c: &client.Client{Socket: sock}}
	t.Cleanup(func() { testenv.RemoveHostContainers(t, docker, e.cfg.HostID) })
	args := []string{"serve", "--socket", sock, "--database-url", dbURL, "--host-id", e.cfg.HostID,
		"--allow-image", "sandboxd-test/*", "--max-per-project", "8", "--create-timeout", "5s", "--resync-interval", "1s",
		"--reap-schedule", "@every 1s", "--orphan-grace", "1s", "--log-format", "text"}
	bystander := e.stranger(t)

	first := runDaemon(t, bin, args, "")
	l := startLoad(e.c, clients)
	e.rowCountAtLeast(t, 3)
	first.cmd.Process.Kill()
	first.wait(t)
	downUntil := time.Now().Add(outage)
	for time.Now().Before(downUntil) {
		if _, err := e.c.Health(context.Background()); err == nil {
			t.Fatal("a killed daemon answered")
		}
		time.Sleep(200 * time.Millisecond)
	}
	runDaemon(t, bin, args, "")
	l.recovers(t, e, "after the restart")
	if !e.running(t, bystander) {
		t.Error("a container without our labels was stopped")
	}
}
