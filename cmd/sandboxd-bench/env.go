package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	dockerclient "github.com/docker/docker/client"

	"github.com/sandboxd/sandboxd/client"
	"github.com/sandboxd/sandboxd/store"
)

const (
	image      = "sandboxd-test/busybox:latest"
	benchLabel = "io.sandboxd.bench"
	adminURL   = "postgres:///postgres?host=/var/run/postgresql"
)

// bench holds the daemon under test and the raw engine beside it.
type bench struct {
	cfg    config
	dir    string
	host   string
	dbURL  string
	dbName string
	st     *store.Store
	docker *dockerclient.Client
	c      *client.Client
	daemon *exec.Cmd
	log    *os.File
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func setup(ctx context.Context, c config) (*bench, error) {
	b := &bench{cfg: c, host: "bench-" + randomHex(4), dbName: "sandboxd_bench_" + randomHex(4)}
	var err error
	if b.dir, err = os.MkdirTemp("", "sbd-bench-"); err != nil {
		return nil, err
	}
	if err := store.CreateDatabase(ctx, adminURL, b.dbName, ""); err != nil {
		return nil, err
	}
	if b.dbURL, err = store.DatabaseURL(adminURL, b.dbName); err != nil {
		return nil, err
	}
	if b.docker, err = dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation()); err != nil {
		return nil, err
	}
	b.c = &client.Client{Socket: filepath.Join(b.dir, "sandboxd.sock")}
	if err := b.startDaemon(ctx); err != nil {
		return b, err
	}
	if b.st, err = store.Open(ctx, b.dbURL); err != nil {
		return b, err
	}
	return b, nil
}

// startDaemon starts the daemon binary and returns once it answers.
func (b *bench) startDaemon(ctx context.Context, extra ...string) error {
	log, err := os.OpenFile(filepath.Join(b.dir, "daemon.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	b.log = log
	b.daemon = exec.Command(b.cfg.daemonBin, "serve", "--socket", b.c.Socket, "--database-url", b.dbURL,
		"--host-id", b.host, "--allow-image", image, "--reap-schedule", "@every 1h",
		"--max-sandboxes", "2000", "--log-level", "warn")
	b.daemon.Args = append(b.daemon.Args, extra...)
	if len(extra) == 0 {
		b.daemon.Args = append(b.daemon.Args, "--max-per-project", "2000")
	}
	b.daemon.Stdout, b.daemon.Stderr = log, log
	if err := b.daemon.Start(); err != nil {
		return fmt.Errorf("start %s: %w", b.cfg.daemonBin, err)
	}
	return waitFor(ctx, 3*time.Minute, func() bool {
		_, err := b.c.Health(ctx)
		return err == nil
	})
}

func (b *bench) stopDaemon() {
	if b.daemon == nil || b.daemon.Process == nil {
		return
	}
	b.daemon.Process.Signal(syscall.SIGTERM)
	b.daemon.Wait()
	b.log.Close()
}

// teardown removes every container of this run and drops the database.
func (b *bench) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.stopDaemon()
	if b.st != nil {
		b.st.Close()
	}
	for _, f := range []filters.Args{
		filters.NewArgs(filters.Arg("label", "io.sandboxd.host="+b.host)),
		filters.NewArgs(filters.Arg("label", benchLabel+"="+b.host)),
	} {
		list, _ := b.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		parallel(16, len(list), func(i int) {
			b.docker.ContainerRemove(ctx, list[i].ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		})
	}
	store.DropDatabase(ctx, adminURL, b.dbName)
	os.RemoveAll(b.dir)
}

func waitFor(ctx context.Context, within time.Duration, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %s", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// parallel runs f(0..n-1) with at most k at once.
func parallel(k, n int, f func(i int)) {
	sem := make(chan struct{}, k)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// rawExec runs a command in a container the way sandboxd does, straight
// through the engine API: create, attach, read to the end, inspect.
func (b *bench) rawExec(ctx context.Context, id string, cmd ...string) error {
	ex, err := b.docker.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, User: "65534:65534",
		AttachStdout: true, AttachStderr: true})
	if err != nil {
		return err
	}
	hj, err := b.docker.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return err
	}
	io.Copy(io.Discard, hj.Reader)
	hj.Close()
	for {
		ins, err := b.docker.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return err
		}
		if !ins.Running {
			if ins.ExitCode != 0 {
				return fmt.Errorf("exec %v: exit %d", cmd, ins.ExitCode)
			}
			return nil
		}
		time.Sleep(time.Millisecond)
	}
}

// procStat reads a process's resident memory and CPU time.
func procStat(pid int) (rss int64, cpu time.Duration, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			rss = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(stat)[strings.LastIndexByte(string(stat), ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return rss, time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// machine describes where the figures were taken.
func machine(ctx context.Context) map[string]string {
	m := map[string]string{"cores": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m["memory"] = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").Output(); err == nil {
		m["docker"] = strings.TrimSpace(string(out))
	}
	if out, err := exec.CommandContext(ctx, "psql", "-h", "/var/run/postgresql", "-d", "postgres", "-tAc", "show server_version").Output(); err == nil {
		m["postgresql"] = strings.TrimSpace(string(out))
	}
	return m
}

// cpuSample is a moment's CPU counters: the host's busy and total time, and
// what the daemon and the PostgreSQL server processes have used.
type cpuSample struct {
	busy, total      time.Duration
	daemon, postgres time.Duration
}

// cpuUse is CPU spent over a window (or several, added up).
type cpuUse struct {
	busy, total      time.Duration
	daemon, postgres time.Duration
}

func (b *bench) cpu() cpuSample {
	var s cpuSample
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		// cpu  user nice system idle iowait irq softirq steal ...
		f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])
		for i, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			d := time.Duration(n) * time.Second / 100
			s.total += d
			if i != 3 && i != 4 { // idle, iowait
				s.busy += d
			}
		}
	}
	_, s.daemon, _ = procStat(b.daemon.Process.Pid)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			_, c, _ := procStat(pid)
			s.postgres += c
		}
	}
	return s
}

// since is the use between s0 and s. PostgreSQL's figure counts the server
// processes alive at the end, so a backend that exited meanwhile is missed
// (the daemon's pool keeps its connections, so its backends do not exit).
func (s cpuSample) since(s0 cpuSample) cpuUse {
	return cpuUse{busy: s.busy - s0.busy, total: s.total - s0.total,
		daemon: s.daemon - s0.daemon, postgres: max(s.postgres-s0.postgres, 0)}
}

func (u cpuUse) add(v cpuUse) cpuUse {
	return cpuUse{busy: u.busy + v.busy, total: u.total + v.total, daemon: u.daemon + v.daemon, postgres: u.postgres + v.postgres}
}

func (u cpuUse) busyPct() float64 {
	if u.total == 0 {
		return 0
	}
	return 100 * float64(u.busy) / float64(u.total)
}

// perContainer spreads d over n containers, in milliseconds.
func perContainer(d time.Duration, n int) float64 { return ms(d) / float64(n) }
