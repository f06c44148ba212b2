package daemon_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
	"github.com/sandboxd/sandboxd/daemon"
	"github.com/sandboxd/sandboxd/internal/testenv"
	"github.com/sandboxd/sandboxd/store"
)

// TestCrashDuringCreate kills the daemon (SIGKILL) at each step of a create,
// changes the engine behind its back while it is down, and restarts it: the
// table must converge on what the engine holds, and no row may be lost.
func TestCrashDuringCreate(t *testing.T) {
	t.Parallel()
	docker := testenv.Docker(t)
	bin := buildDaemon(t, "sandboxd_crashpoints")
	for point, want := range map[string]store.State{
		"after-intent": store.Failed,  // no container was made: the create failed
		"after-create": store.Removed, // a container exists, never started: removed as a failed create after --create-timeout
		"after-start":  store.Running, // the container runs; only the row lagged
	} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			st, dbURL := testenv.Store(t)
			dir := t.TempDir()
			e := &env{cfg: daemon.Config{HostID: "test-crash-" + testenv.RandomHex(4), Socket: filepath.Join(dir, "s.sock")},
				st: st, docker: docker, c: &client.Client{Socket: filepath.Join(dir, "s.sock")}}
			t.Cleanup(func() { testenv.RemoveHostContainers(t, docker, e.cfg.HostID) })
			args := []string{"serve", "--socket", e.cfg.Socket, "--database-url", dbURL, "--host-id", e.cfg.HostID,
				"--allow-image", "sandboxd-test/*", "--create-timeout", "2s", "--resync-interval", "1s",
				"--reap-schedule", "@every 1s", "--orphan-grace", "1s", "--log-format", "text"}

			// A sandbox made before the crash, which is removed while the
			// daemon is down.
			first := runDaemon(t, bin, args, "")
			gone := e.create(t, api.CreateRequest{ProjectID: "crash"})
			first.stop(t)

			crashing := runDaemon(t, bin, args, point)
			_, _, err := e.c.Create(context.Background(), api.CreateRequest{ProjectID: "crash", Image: testenv.Image})
			if err == nil {
				t.Fatal("create succeeded on a daemon that should have died")
			}
			if code := crashing.wait(t); code != -1 {
				t.Fatalf("daemon exited with %d, want death by SIGKILL", code)
			}
			if err := docker.ContainerRemove(context.Background(), gone.ContainerID, containerRemoveForce); err != nil {
				t.Fatal(err)
			}
			// And an orphan appears: our labels, no row.
			orphan := e.runContainer(t, map[string]string{daemon.LabelManaged: "true", daemon.LabelHost: e.cfg.HostID,
				daemon.LabelSandboxID: uuid.NewString(), daemon.LabelProject: "crash"})

			runDaemon(t, bin, args, "")
			e.converges(t, 10*time.Second, "after the restart")
			testenv.Eventually(t, 10*time.Second, "the reaper removes the orphan", func() bool {
				_, err := docker.ContainerInspect(context.Background(), orphan)
				return err != nil
			})
			// The crashed create's row settles once --create-timeout has passed.
			testenv.Eventually(t, 10*time.Second, "the crashed create's row is "+string(want), func() bool {
				rows, _ := st.List(context.Background(), store.Filter{HostID: e.cfg.HostID, All: true})
				return slices.ContainsFunc(rows, func(r store.Sandbox) bool {
					return r.ID != gone.ID && r.ContainerID != orphan && r.State == want
				})
			})
			e.converges(t, 10*time.Second, "after the orphan went")
			rows, err := st.List(context.Background(), store.Filter{HostID: e.cfg.HostID, All: true})
			if err != nil || len(rows) != 3 {
				t.Fatalf("rows after the crash: %d, %v; want both sandboxes and the orphan's", len(rows), err)
			}
			for _, r := range rows {
				switch {
				case r.ID == gone.ID && (r.State != store.Removed || r.RemovalReason != store.ReasonVanished):
					t.Errorf("sandbox removed while down is %s/%s, want removed/vanished", r.State, r.RemovalReason)
				case r.ContainerID == orphan && (r.State != store.Removed || r.RemovalReason != store.ReasonOrphaned):
					t.Errorf("orphan's row is %s/%s, want removed/orphaned", r.State, r.RemovalReason)
				case r.ID != gone.ID && r.ContainerID != orphan && r.State != want:
					t.Errorf("sandbox of the crashed create is %s, want %s", r.State, want)
				case r.ID != gone.ID && r.ContainerID != orphan && want == store.Removed && r.RemovalReason != store.ReasonFailed:
					t.Errorf("sandbox of the crashed create was removed with reason %s, want failed", r.RemovalReason)
				}
			}
		})
	}
}

// buildDaemon builds the daemon binary, with the given build tags, into a
// temporary folder.
func buildDaemon(t *testing.T, tags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sandboxd")
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	if out, err := exec.Command("go", append(args, "../cmd/sandboxd")...).CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

type daemonProc struct {
	cmd  *exec.Cmd
	log  *testenv.Buffer
	done chan struct{}
}

// runDaemon starts the daemon binary and waits until it answers. crashAt,
// when set, names the crash point where it will kill itself.
func runDaemon(t *testing.T, bin string, args []string, crashAt string) *daemonProc {
	t.Helper()
	p := runDaemonNoWait(t, bin, args, crashAt)
	sock := args[2]
	c := &client.Client{Socket: sock}
	testenv.Eventually(t, 30*time.Second, "the daemon answers", func() bool {
		select {
		case <-p.done:
			t.Fatalf("daemon exited at start-up:\n%s", p.log)
		default:
		}
		_, err := c.Health(context.Background())
		return err == nil
	})
	return p
}

// runDaemonNoWait starts the daemon binary.
func runDaemonNoWait(t *testing.T, bin string, args []string, crashAt string) *daemonProc {
	t.Helper()
	p := &daemonProc{cmd: exec.Command(bin, args...), log: &testenv.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "SANDBOXD_CRASH_AT="+crashAt)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("daemon log (crash at %q):\n%s", crashAt, p.log)
		}
	})
	return p
}

// wait returns the exit code, -1 when a signal ended the process.
func (p *daemonProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not exit")
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *daemonProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(t); code != 0 {
		t.Fatalf("daemon exited with %d on SIGINT:\n%s", code, p.log)
	}
}
