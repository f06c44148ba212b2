package testenv

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// PrivateDocker is a Docker engine of the test's own, so that stopping and
// restarting it disturbs nothing else: its own socket, data root, exec root
// and pid file, no bridge and no iptables rules.
type PrivateDocker struct {
	Host string // unix:///... address of its socket
	dir  string
	cmd  *exec.Cmd
	t    testing.TB
}

// StartPrivateDocker starts a private engine, loads the test image into it
// from the main engine, and stops it when the test ends.
func StartPrivateDocker(t testing.TB) *PrivateDocker {
	t.Helper()
	main := Docker(t)
	if _, err := exec.LookPath("dockerd"); err != nil {
		Unavailable(t, "dockerd is not installed: %v", err)
	}
	// Short paths: the engine's and containerd's sockets live under them,
	// and a Unix socket path has at most 107 bytes.
	dir, err := os.MkdirTemp("", "sbd-dk-")
	if err != nil {
		t.Fatal(err)
	}
	p := &PrivateDocker{Host: "unix://" + filepath.Join(dir, "docker.sock"), dir: dir, t: t}
	t.Cleanup(func() {
		p.removeAll()
		p.Stop()
		killStrays(dir)
		unmountUnder(dir)
		os.RemoveAll(dir)
	})
	p.Start()

	cli := p.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rc, err := main.ImageSave(ctx, []string{Image})
	if err != nil {
		t.Fatalf("save %s: %v", Image, err)
	}
	defer rc.Close()
	resp, err := cli.ImageLoad(ctx, rc)
	if err != nil {
		t.Fatalf("load %s into the private engine: %v", Image, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return p
}

// removeAll removes every container of a running private engine, so that
// none outlives it: an engine that stops with containers running can leave
// their shims and mounts behind.
func (p *PrivateDocker) removeAll() {
	if p.cmd == nil {
		return
	}
	cli, err := client.NewClientWithOpts(client.WithHost(p.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return
	}
	for _, c := range list {
		cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
}

// killStrays kills what an engine stopped mid-test can leave running: the
// containerd shims that name dir in their command line, and the container
// processes below them.
func killStrays(dir string) {
	children := map[int][]int{}
	var roots []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			s := string(stat)
			if i := strings.LastIndexByte(s, ')'); i > 0 {
				if f := strings.Fields(s[i+1:]); len(f) > 1 {
					ppid, _ := strconv.Atoi(f[1])
					children[ppid] = append(children[ppid], pid)
				}
			}
		}
		if cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(string(cmd), dir) {
			roots = append(roots, pid)
		}
	}
	for i := 0; i < len(roots); i++ {
		roots = append(roots, children[roots[i]]...)
	}
	for i := len(roots) - 1; i >= 0; i-- {
		syscall.Kill(roots[i], syscall.SIGKILL)
	}
}

// unmountUnder detaches what the engine left mounted below dir.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			syscall.Unmount(f[1], syscall.MNT_DETACH)
		}
	}
}

// Client returns a client of the private engine, closed when the test ends.
func (p *PrivateDocker) Client() *client.Client {
	cli, err := client.NewClientWithOpts(client.WithHost(p.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { cli.Close() })
	return cli
}

// Start starts the engine (again) and waits until it answers.
func (p *PrivateDocker) Start() {
	p.t.Helper()
	log, err := os.OpenFile(filepath.Join(p.dir, "dockerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer log.Close()
	p.cmd = exec.Command("dockerd", "-H", p.Host,
		"--data-root", filepath.Join(p.dir, "data"), "--exec-root", filepath.Join(p.dir, "x"),
		"--pidfile", filepath.Join(p.dir, "dockerd.pid"),
		"--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false")
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start dockerd: %v", err)
	}
	cli, err := client.NewClientWithOpts(client.WithHost(p.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		p.t.Fatal(err)
	}
	defer cli.Close()
	Eventually(p.t, time.Minute, "the private dockerd answers", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Ping(ctx)
		return err == nil
	})
}

// Stop stops the engine (SIGTERM) and waits for it to exit. Its containers
// stop with it.
func (p *PrivateDocker) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	p.cmd = nil
}

// PGProxy stands between a test's daemon and PostgreSQL on a Unix socket
// of its own, and can cut the connection: a database outage on demand.
type PGProxy struct {
	Dir string // the socket folder, for host= in a connection string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	ln    net.Listener
	wg    sync.WaitGroup
}

// StartPGProxy forwards a private socket to the local PostgreSQL server.
func StartPGProxy(t testing.TB) *PGProxy {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbd-pg-")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, ".s.PGSQL.5432"))
	if err != nil {
		t.Fatal(err)
	}
	p := &PGProxy{Dir: dir, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
		p.wg.Wait()
		os.RemoveAll(dir)
	})
	return p
}

func (p *PGProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("unix", "/var/run/postgresql/.s.PGSQL.5432")
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		p.wg.Go(func() { pipe(up, c) })
		p.wg.Go(func() { pipe(c, up) })
	}
}

// Cut closes every connection and refuses new ones until Heal.
func (p *PGProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Heal lets connections through again.
func (p *PGProxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}
