package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/stdcopy"
	"golang.org/x/sys/unix"
)

// killGrace is how long an exec's output may keep flowing after its
// processes were killed on timeout: a process that escaped the kill (a
// daemon reparented to the sandbox's init) may hold the stream open, and
// the caller was promised an answer within timeout + 2s.
const killGrace = 1500 * time.Millisecond

// execRun is one command run in a sandbox.
type execRun struct {
	ContainerID string
	Cmd         []string
	Env         []string
	Workdir     string
	Stdin       io.Reader // nil: no stdin
	Stdout      io.Writer
	Stderr      io.Writer
	Timeout     time.Duration
}

// execOutcome is how a run ended.
type execOutcome struct {
	ExitCode int
	TimedOut bool
	Duration time.Duration
}

// runExec runs r as the sandbox user and waits for it to end, for its
// timeout to pass (it then kills the command's processes and reports
// TimedOut), or for ctx to end (it kills them too, and returns ctx's error).
func (m *manager) runExec(ctx context.Context, r execRun) (execOutcome, error) {
	start := time.Now()
	opts := container.ExecOptions{
		User: m.cfg.SandboxUser, Cmd: r.Cmd, Env: r.Env, WorkingDir: r.Workdir,
		AttachStdin: r.Stdin != nil, AttachStdout: true, AttachStderr: true,
	}
	callCtx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	created, err := m.docker.ContainerExecCreate(callCtx, r.ContainerID, opts)
	cancel()
	if err != nil {
		if errdefs.IsConflict(err) || errdefs.IsNotFound(err) {
			return execOutcome{}, conflict("sandbox is not running: " + err.Error())
		}
		return execOutcome{}, fmt.Errorf("create exec in %s: %w", r.ContainerID, err)
	}
	// The attach lives as long as the command; it is bounded by the timer
	// below, not by a context deadline.
	hj, err := m.docker.ContainerExecAttach(context.WithoutCancel(ctx), created.ID, container.ExecAttachOptions{})
	if err != nil {
		return execOutcome{}, fmt.Errorf("attach exec in %s: %w", r.ContainerID, err)
	}
	defer hj.Close()
	if r.Stdin != nil {
		go func() {
			io.Copy(hj.Conn, r.Stdin)
			hj.CloseWrite()
		}()
	}
	done := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(r.Stdout, r.Stderr, hj.Reader)
		done <- err
	}()

	timer := time.NewTimer(r.Timeout)
	defer timer.Stop()
	var out execOutcome
	var ctxErr error
	select {
	case err = <-done:
	case <-timer.C:
		out.TimedOut = true
	case <-ctx.Done():
		ctxErr = ctx.Err()
	}
	if out.TimedOut || ctxErr != nil {
		m.killExec(created.ID, r.ContainerID)
		select {
		case err = <-done:
		case <-time.After(killGrace):
			hj.Close() // ends StdCopy
			err = <-done
		}
	}
	out.Duration = time.Since(start)
	if ctxErr != nil {
		return out, ctxErr
	}
	if err != nil && !out.TimedOut {
		return out, fmt.Errorf("read exec output in %s: %w", r.ContainerID, err)
	}
	out.ExitCode, err = m.execExitCode(ctx, created.ID)
	return out, err
}

// execExitCode waits briefly for the engine to record the exit code: the
// output stream can close a moment before the exec is marked ended.
func (m *manager) execExitCode(ctx context.Context, execID string) (int, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dockerCallTimeout)
	defer cancel()
	// The gap is usually under a millisecond: poll fast, then back off.
	for wait := 500 * time.Microsecond; ; wait = min(wait*2, 20*time.Millisecond) {
		ins, err := m.docker.ContainerExecInspect(ctx, execID)
		if err != nil {
			return -1, fmt.Errorf("inspect exec %s: %w", execID, err)
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("exec %s still running after its output ended", execID)
		case <-time.After(wait):
		}
	}
}

// killExec kills an exec's process and every process it started. The
// engine has no API for this, so it finds them by walking the host's /proc
// from the exec's host pid. It signals them directly when it may (the
// daemon runs as root); otherwise it runs kill inside the sandbox as the
// sandbox user, who owns them, with their pids as the sandbox sees them.
func (m *manager) killExec(execID, containerID string) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
	defer cancel()
	ins, err := m.docker.ContainerExecInspect(ctx, execID)
	if err != nil || !ins.Running || ins.Pid <= 0 {
		return
	}
	var inner []string
	for _, pid := range processTree(ins.Pid) {
		if err := unix.Kill(pid, unix.SIGKILL); err == nil {
			continue
		}
		if ns := namespacePID(pid); ns != "" {
			inner = append(inner, ns)
		}
	}
	if len(inner) == 0 {
		return
	}
	var stderr strings.Builder
	res, err := m.runExec(ctx, execRun{ContainerID: containerID, Cmd: append([]string{"kill", "-KILL"}, inner...),
		Stdout: io.Discard, Stderr: &stderr, Timeout: 5 * time.Second})
	if err != nil || res.ExitCode != 0 {
		m.log.Warn("kill timed-out exec", "container_id", containerID, "exit_code", res.ExitCode, "stderr", stderr.String(), "err", err)
	}
}

// processTree returns root and all its descendants, from the host's /proc.
func processTree(root int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid := parentPID(pid); ppid > 0 {
			children[ppid] = append(children[ppid], pid)
		}
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

func parentPID(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// The command name in parentheses may hold spaces; fields resume after
	// the last ')': state, then ppid.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// namespacePID returns the pid of a host process as its own (innermost)
// pid namespace sees it.
func namespacePID(pid int) string {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return f[len(f)-1]
			}
		}
	}
	return ""
}

// capped keeps the first max bytes written to it and counts the rest, so
// that a command's output is drained to its end without growing memory.
type capped struct {
	max       int64
	buf       []byte
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - int64(len(c.buf))
	if room <= 0 {
		c.truncated = c.truncated || len(p) > 0
		return len(p), nil
	}
	if int64(len(p)) > room {
		c.buf = append(c.buf, p[:room]...)
		c.truncated = true
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}
