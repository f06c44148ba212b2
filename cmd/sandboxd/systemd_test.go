package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
	"github.com/sandboxd/sandboxd/internal/testenv"
)

// notifySocket is a NOTIFY_SOCKET that records what the daemon says, with
// when it was said.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []notifyMsg
}

type notifyMsg struct {
	at   time.Time
	text string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, notifyMsg{time.Now(), string(buf[:k])})
			n.mu.Unlock()
		}
	}()
	return n
}

// count says how many messages held line.
func (n *notifySocket) count(line string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		for _, l := range strings.Split(m.text, "\n") {
			if l == line {
				c++
			}
		}
	}
	return c
}

func (n *notifySocket) has(prefix string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.msgs {
		if strings.Contains(m.text, prefix) {
			return true
		}
	}
	return false
}

// daemonArgs are the serve flags of a test daemon on its own database,
// socket and host id.
func daemonArgs(t *testing.T, sock string) []string {
	t.Helper()
	docker := testenv.Docker(t)
	host := "test-sd-" + testenv.RandomHex(4)
	t.Cleanup(func() { testenv.RemoveHostContainers(t, docker, host) })
	return []string{"serve", "--socket", sock, "--database-url", testenv.Database(t), "--host-id", host,
		"--allow-image", "sandboxd-test/*", "--log-format", "text"}
}

// TestNotifyProtocol: READY=1 only once the API answers, WATCHDOG=1 at half
// of WATCHDOG_USEC, STATUS= lines, and STOPPING=1 then a clean exit on
// SIGTERM.
func TestNotifyProtocol(t *testing.T) {
	t.Parallel()
	bin := buildDaemon(t)
	sock := filepath.Join(t.TempDir(), "s.sock")
	n := listenNotify(t)
	cmd := exec.Command(bin, daemonArgs(t, sock)...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=600000")
	var log testenv.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", log.String())
		}
	})

	c := &client.Client{Socket: sock}
	testenv.Eventually(t, 60*time.Second, "READY=1", func() bool { return n.count("READY=1") > 0 })
	// The moment READY=1 is read, the API must answer.
	if h, err := c.Health(context.Background()); err != nil || h.Status != "ok" {
		t.Fatalf("health right after READY=1: %+v, %v", h, err)
	}
	if !n.has("STATUS=live sandboxes: 0; events: ok") {
		t.Errorf("no STATUS= line with the daemon's state: %+v", n.msgs)
	}
	// At half of 600 ms: several pings in two seconds.
	testenv.Eventually(t, 3*time.Second, "regular WATCHDOG=1", func() bool { return n.count("WATCHDOG=1") >= 3 })

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("no exit within the unit's TimeoutStopSec after SIGTERM")
	}
	if n.count("STOPPING=1") != 1 {
		t.Errorf("STOPPING=1 sent %d times, want once", n.count("STOPPING=1"))
	}
}

// TestSocketActivation starts the daemon the way systemd does for
// sandboxd.socket: the socket is bound first, and passed in as LISTEN_FDS.
func TestSocketActivation(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("systemd-socket-activate"); err != nil {
		testenv.Unavailable(t, "systemd-socket-activate: %v", err)
	}
	bin := buildDaemon(t)
	sock := filepath.Join(t.TempDir(), "activated.sock")
	// The daemon is told another socket path: it must serve on the one it
	// was handed, not bind its own.
	args := daemonArgs(t, filepath.Join(t.TempDir(), "unused.sock"))
	cmd := exec.Command("systemd-socket-activate", append([]string{"-l", sock, bin}, args...)...)
	var log testenv.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("log:\n%s", log.String())
		}
	})
	testenv.Eventually(t, 10*time.Second, "the activation socket exists", func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	// The first connection starts the daemon, which then answers it.
	c := &client.Client{Socket: sock}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, created, err := c.Create(ctx, api.CreateRequest{ProjectID: "activated", Image: testenv.Image})
	if err != nil || !created || sb.State != "running" {
		t.Fatalf("create over the passed socket: %+v, %v", sb, err)
	}
	if !strings.Contains(log.String(), "socket_activated=true") {
		t.Errorf("daemon did not say it was socket-activated:\n%s", log.String())
	}
	if _, err := os.Stat(args[2]); err == nil {
		t.Errorf("daemon bound its own socket %s although one was passed", args[2])
	}
}

// TestGracefulStop: SIGTERM during a slow exec lets the exec finish, then
// the daemon exits 0; the sandbox keeps running.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	bin := buildDaemon(t)
	sock := filepath.Join(t.TempDir(), "s.sock")
	cmd := exec.Command(bin, daemonArgs(t, sock)...)
	var log testenv.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	c := &client.Client{Socket: sock}
	ctx := context.Background()
	testenv.Eventually(t, 60*time.Second, "the daemon answers", func() bool { _, err := c.Health(ctx); return err == nil })
	sb, _, err := c.Create(ctx, api.CreateRequest{ProjectID: "graceful", Image: testenv.Image})
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		res api.ExecResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: []string{"sh", "-c", "touch /tmp/started; sleep 3; echo finished"}})
		done <- result{res, err}
	}()
	docker := testenv.Docker(t)
	testenv.Eventually(t, 10*time.Second, "the slow exec is running", func() bool {
		top, err := docker.ContainerTop(ctx, sb.ContainerID, nil)
		if err != nil {
			return false
		}
		for _, p := range top.Processes {
			if strings.Contains(strings.Join(p, " "), "sleep 3") {
				return true
			}
		}
		return false
	})
	began := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)

	r := <-done
	if r.err != nil || r.res.Stdout != "finished\n" || r.res.ExitCode != 0 {
		t.Errorf("exec in flight at SIGTERM: %+v, %v; want it to finish", r.res, r.err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v, want 0\n%s", err, log.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatal("daemon did not exit within the bound")
	}
	if took := time.Since(began); took > 35*time.Second {
		t.Errorf("stop took %s, the drain bound is 30s", took)
	}
	ins, err := docker.ContainerInspect(ctx, sb.ContainerID)
	if err != nil || !ins.State.Running {
		t.Errorf("sandbox after the daemon stopped: %v; it must keep running", err)
	}
}
