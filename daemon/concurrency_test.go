package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
	"github.com/sandboxd/sandboxd/daemon"
	"github.com/sandboxd/sandboxd/internal/testenv"
)

// TestQuotaUnderConcurrency fires creates at the quota boundary at once:
// exactly the quota is made, the rest are refused with quota_exceeded.
func TestQuotaUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *daemon.Config) { c.MaxPerProject = 3; c.MaxSandboxes = 5 })
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	made, refused := 0, 0
	for i := range 12 {
		wg.Go(func() {
			project := "quota-a"
			if i%3 == 0 {
				project = "quota-b"
			}
			_, _, err := e.c.Create(ctx, api.CreateRequest{ProjectID: project, Image: testenv.Image})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				made++
			case client.IsQuotaExceeded(err):
				refused++
			default:
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	// quota-a may have 3, quota-b 3 of its 4, but the host only 5.
	if made != 5 || refused != 7 {
		t.Errorf("made %d, refused %d; want 5 and 7", made, refused)
	}
	if n := len(containers(t, e.docker, e.cfg.HostID)); n != 5 {
		t.Errorf("%d containers on the host, want 5", n)
	}
	for _, p := range []string{"quota-a", "quota-b"} {
		if list, _ := e.c.List(ctx, client.ListOptions{ProjectID: p}); len(list) > 3 {
			t.Errorf("project %s has %d live sandboxes, quota 3", p, len(list))
		}
	}
}

// TestIdempotentRetriesRace sends the same create ten times at once: one
// container, one sandbox, one 201 and nine 200s.
func TestIdempotentRetriesRace(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[string]int{}
	createdCount := 0
	for range 10 {
		wg.Go(func() {
			sb, created, err := e.c.Create(ctx, api.CreateRequest{ProjectID: "idem", Image: testenv.Image, IdempotencyKey: "job-7"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("create: %v", err)
				return
			}
			if sb.State != "running" {
				t.Errorf("retry answered with state %s", sb.State)
			}
			ids[sb.ID]++
			if created {
				createdCount++
			}
		})
	}
	wg.Wait()
	if len(ids) != 1 || createdCount != 1 {
		t.Errorf("ids %v, %d answered 201; want one sandbox created once", ids, createdCount)
	}
	if n := len(containers(t, e.docker, e.cfg.HostID)); n != 1 {
		t.Errorf("%d containers, want 1", n)
	}
}

// TestExecTimeout kills a command that outlives its timeout, answers within
// timeout + 2s, and leaves the sandbox usable.
func TestExecTimeout(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	ctx := context.Background()
	sb := e.create(t, api.CreateRequest{ProjectID: "slow"})
	began := time.Now()
	res, err := e.c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: []string{"sh", "-c", "echo started; sleep 300 & sleep 300"}, TimeoutSeconds: ptr(int64(1))})
	took := time.Since(began)
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.Stdout != "started\n" {
		t.Errorf("exec = %+v, want timed_out with the output so far", res)
	}
	// The contract: the call returns within its timeout plus 2 seconds.
	if took > 3*time.Second {
		t.Errorf("timed-out exec returned after %s, promised within 3s", took)
	}
	res, err = e.c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: []string{"sh", "-c", "ps -o args | grep -c '[s]leep 300'; echo next"}})
	if err != nil || res.ExitCode != 0 || res.Stdout != "0\nnext\n" {
		t.Errorf("exec after a timeout = %+v, %v; want it to work, with the sleeps gone", res, err)
	}
}

// TestOutputCap keeps the first --max-output-bytes of each stream.
func TestOutputCap(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *daemon.Config) { c.MaxOutputBytes = 1000 })
	sb := e.create(t, api.CreateRequest{ProjectID: "loud"})
	res, err := e.c.Exec(context.Background(), sb.ID, api.ExecRequest{Cmd: []string{"sh", "-c", "yes | head -c 100000; yes e | head -c 10 >&2"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) != 1000 || !res.StdoutTruncated || res.Stderr != "e\ne\ne\ne\ne\n" || res.StderrTruncated || res.ExitCode != 0 {
		t.Errorf("exec = %d bytes stdout (truncated %v), stderr %q (truncated %v), exit %d",
			len(res.Stdout), res.StdoutTruncated, res.Stderr, res.StderrTruncated, res.ExitCode)
	}
}

// TestPeerCredentials runs a client as a uid the daemon does not allow: it
// may ask for health, and is refused everything else.
func TestPeerCredentials(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *daemon.Config) { c.SocketMode = 0o666; c.AllowUIDs = []uint32{4242} })
	if os.Getuid() != 0 {
		testenv.Unavailable(t, "running a client as another uid needs root")
	}
	// The test binary is copied where the other uid can run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	bin := filepath.Join(dir, "client")
	copyFile(t, self, bin)

	run := func(uid uint32) map[string]string {
		cmd := exec.Command(bin)
		cmd.Env = []string{"SANDBOXD_TEST_CLIENT_SOCKET=" + e.cfg.Socket}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("client as uid %d: %v\n%s", uid, err, out)
		}
		got := map[string]string{}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("client output %q: %v", out, err)
		}
		return got
	}
	denied := run(4343)
	if denied["health"] != "ok" || denied["create"] != api.CodePermissionDenied {
		t.Errorf("uid 4343: %v; want health ok and create permission_denied", denied)
	}
	if n := e.rows(t); n != 0 {
		t.Errorf("a refused caller made %d rows", n)
	}
	if n := len(containers(t, e.docker, e.cfg.HostID)); n != 0 {
		t.Errorf("a refused caller made %d containers", n)
	}
	allowed := run(4242)
	if allowed["create"] != "<nil>" {
		t.Errorf("uid 4242 (--allow-uid): %v; want the create to pass", allowed)
	}
	sbs, err := e.st.List(context.Background(), storeFilterAll(e))
	if err != nil || len(sbs) != 1 || sbs[0].RequestedByUID == nil || *sbs[0].RequestedByUID != 4242 {
		t.Errorf("rows after the allowed caller: %+v, %v; want one, requested by uid 4242", sbs, err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
