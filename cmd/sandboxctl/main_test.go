package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
)

// TestUsageErrors checks that wrong command lines exit 2 before any call to
// the daemon (whose socket here does not exist, which would exit 1).
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "none.sock")
	tests := [][]string{
		{},
		{"frobnicate"},
		{"--bogus", "ps"},
		{"-o", "yaml", "ps"},
		{"ps", "extra"},
		{"ps", "--nope"},
		{"inspect"},
		{"inspect", "a", "b"},
		{"create", "--image", "busybox"},
		{"create", "--project", "p", "--image", "i", "--ttl", "1500ms"},
		{"create", "--project", "p", "--image", "i", "--ttl", "0s"},
		{"create", "--project", "p", "--image", "i", "--memory", "lots"},
		{"create", "--project", "p", "--image", "i", "--cpus", "-1"},
		{"create", "--project", "p", "--image", "i", "--label", "novalue"},
		{"exec"},
		{"exec", "abc"},
		{"exec", "abc", "--timeout", "0.5s", "--", "true"},
		{"cp", "a", "b"},
		{"cp", "a:/x", "b:/y"},
		{"cp", "a"},
		{"extend", "abc"},
		{"extend", "abc", "1.5s"},
		{"rm"},
		{"events"},
		{"health", "now"},
	}
	for _, args := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"--socket", sock}, args...), nil, &stdout, &stderr)
		if code != 2 {
			t.Errorf("run %q = %d, want 2; stderr: %s", args, code, stderr.String())
		}
		if !strings.HasPrefix(stderr.String(), "sandboxctl: ") {
			t.Errorf("run %q: stderr %q does not start with sandboxctl: ", args, stderr.String())
		}
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"-h"}, {"ps", "-h"}, {"version"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, nil, &stdout, &stderr); code != 0 || stdout.Len() == 0 {
			t.Errorf("run %q = %d, stdout %q, stderr %q; want 0 and output", args, code, stdout.String(), stderr.String())
		}
	}
}

func TestDaemonDown(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "none.sock")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--socket", sock, "ps"}, nil, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "is sandboxd running?") {
		t.Errorf("ps without a daemon = %d, stderr %q; want 1 and a hint", code, stderr.String())
	}
}

// cannedSandboxes are two live sandboxes whose ids share the prefix "0b7c"
// and one removed sandbox.
func cannedSandboxes(now time.Time) []api.Sandbox {
	idle := "expired"
	removedAt := now.Add(-time.Minute)
	return []api.Sandbox{
		{ID: "0b7c6f1e-4a8e-4d2b-9c3a-1f2e3d4c5b6a", ProjectID: "proj-a", Image: "busybox:latest", State: "running", AcquiredFrom: "pool",
			CreatedAt: now.Add(-3*time.Minute - 10*time.Second), ExpiresAt: now.Add(4*time.Minute + 12*time.Second)},
		{ID: "0b7c99aa-0000-4000-8000-000000000001", ProjectID: "proj-b", Image: "python:3.13", State: "exited",
			CreatedAt: now.Add(-2*time.Hour - 5*time.Minute), ExpiresAt: now.Add(-time.Second)},
		{ID: "f00dbabe-1111-4111-8111-111111111111", ProjectID: "proj-a", Image: "busybox:latest", State: "removed",
			CreatedAt: now.Add(-50 * time.Hour), ExpiresAt: now.Add(-time.Hour), RemovedAt: &removedAt, RemovalReason: &idle},
	}
}

func TestPsTable(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := startFake(t, cannedSandboxes(now))
	var stdout, stderr bytes.Buffer
	c := &cli{client: &client.Client{Socket: f.sock}, stdout: &stdout, stderr: &stderr, now: func() time.Time { return now }}
	if err := c.ps(context.Background(), []string{"--all", "--project", "proj-a", "--state", "running,removed"}); err != nil {
		t.Fatalf("ps: %v", err)
	}
	want := `SANDBOX ID     PROJECT   STATE     IMAGE            CREATED   EXPIRES    REASON    FROM
0b7c6f1e-4a8   proj-a    running   busybox:latest   3m ago    in 4m12s   -         pool
0b7c99aa-000   proj-b    exited    python:3.13      2h ago    expired    -         cold
f00dbabe-111   proj-a    removed   busybox:latest   2d ago    -          expired   cold
`
	if stdout.String() != want {
		t.Errorf("ps table:\n%s\nwant:\n%s", stdout.String(), want)
	}
	f.mu.Lock()
	q := f.lastList
	f.mu.Unlock()
	if q != "all=true&project_id=proj-a&state=running%2Cremoved" {
		t.Errorf("list query = %s", q)
	}
}

func TestPsJSON(t *testing.T) {
	t.Parallel()
	f := startFake(t, nil)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--socket", f.sock, "-o", "json", "ps"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("ps = %d: %s", code, stderr.String())
	}
	if strings.TrimSpace(stdout.String()) != "[]" {
		t.Errorf("ps -o json with no sandboxes = %q, want []", stdout.String())
	}
}

func TestInspectPrefix(t *testing.T) {
	t.Parallel()
	f := startFake(t, cannedSandboxes(time.Now()))
	tests := []struct {
		arg    string
		code   int
		stdout string // a part of stdout
		stderr string // a part of stderr
	}{
		{arg: "0b7c6", code: 0, stdout: `"id": "0b7c6f1e-4a8e-4d2b-9c3a-1f2e3d4c5b6a"`},
		{arg: "F00D", code: 0, stdout: `"removal_reason": "expired"`},
		{arg: "0b7c6f1e-4a8e-4d2b-9c3a-1f2e3d4c5b6a", code: 0, stdout: `"project_id": "proj-a"`},
		{arg: "0b7c", code: 1, stderr: "sandboxctl: ID prefix 0b7c is ambiguous (2 sandboxes)"},
		{arg: "beef", code: 1, stderr: "sandboxctl: no sandbox matches beef"},
		{arg: "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", code: 1, stderr: "sandboxctl: not_found: sandbox aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa not found"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"--socket", f.sock, "inspect", tt.arg}, nil, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("inspect %s = %d\nstdout: %s\nstderr: %s\nwant %d, %q, %q", tt.arg, code, stdout.String(), stderr.String(), tt.code, tt.stdout, tt.stderr)
		}
	}
}

func TestExec(t *testing.T) {
	t.Parallel()
	f := startFake(t, cannedSandboxes(time.Now()))
	var stdout, stderr bytes.Buffer
	args := []string{"--socket", f.sock, "exec", "0b7c6", "--env", "A=1", "--timeout", "5s", "--", "sh", "-c", "cat"}
	code := run(context.Background(), args, strings.NewReader("input"), &stdout, &stderr)
	if code != 3 {
		t.Errorf("exec = %d, want the command's 3; stderr: %s", code, stderr.String())
	}
	if stdout.String() != "out:input" || !strings.HasPrefix(stderr.String(), "err\n") || !strings.Contains(stderr.String(), "stdout was truncated") {
		t.Errorf("exec stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	f.mu.Lock()
	req := f.lastExec
	f.mu.Unlock()
	if strings.Join(req.Cmd, " ") != "sh -c cat" || req.Env["A"] != "1" || req.TimeoutSeconds == nil || *req.TimeoutSeconds != 5 {
		t.Errorf("exec request = %+v", req)
	}
}

func TestHealthDegraded(t *testing.T) {
	t.Parallel()
	f := startFake(t, nil)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--socket", f.sock, "health"}, nil, &stdout, &stderr)
	if code != 1 || !strings.Contains(stdout.String(), "status:   degraded") || !strings.Contains(stdout.String(), "database: connection refused") {
		t.Errorf("health = %d, stdout %q, stderr %q; want 1 and the report", code, stdout.String(), stderr.String())
	}
}

func TestRmContinuesPastFailures(t *testing.T) {
	t.Parallel()
	f := startFake(t, cannedSandboxes(time.Now()))
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--socket", f.sock, "rm", "beef", "f00d"}, nil, &stdout, &stderr)
	// The fake has no DELETE route, so f00d fails too, after beef's miss.
	if code != 1 || strings.Count(stderr.String(), "sandboxctl: rm ") != 2 {
		t.Errorf("rm = %d, stderr %q; want 1 and two failures", code, stderr.String())
	}
}

// TestCreateRequest checks that create sends only what the command line
// gave, so the daemon's defaults decide the rest.
func TestCreateRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string // the request as JSON
	}{
		{
			args: []string{"--project", "p", "--image", "busybox"},
			want: `{"project_id":"p","image":"busybox"}`,
		},
		{
			args: []string{"--project", "p", "--image", "busybox", "--memory", "256MiB", "--label", "a=b", "--", "sleep", "60"},
			want: `{"project_id":"p","image":"busybox","cmd":["sleep","60"],"limits":{"memory_bytes":268435456},"labels":{"a":"b"}}`,
		},
		{
			args: []string{"--project", "p", "--image", "i", "--ttl", "10m", "--idle-timeout", "90s", "--cpus", "0.5",
				"--pids", "64", "--env", "K=V=W", "--workdir", "/w", "--idempotency-key", "k1", "echo", "hi"},
			want: `{"project_id":"p","image":"i","cmd":["echo","hi"],"env":{"K":"V=W"},"workdir":"/w","ttl_seconds":600,` +
				`"idle_timeout_seconds":90,"limits":{"nano_cpus":500000000,"pids":64},"idempotency_key":"k1"}`,
		},
	}
	for _, tt := range tests {
		c := &cli{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
		req, err := c.createRequest(tt.args)
		if err != nil {
			t.Errorf("createRequest %q: %v", tt.args, err)
			continue
		}
		b, _ := json.Marshal(req)
		if string(b) != tt.want {
			t.Errorf("createRequest %q =\n%s\nwant\n%s", tt.args, b, tt.want)
		}
	}
}

// TestCpRoundTrip uploads a directory to the fake daemon and downloads it
// back, through the same code paths as a real sandbox.
func TestCpRoundTrip(t *testing.T) {
	t.Parallel()
	f := startFake(t, cannedSandboxes(time.Now()))
	src := filepath.Join(t.TempDir(), "proj")
	mustWrite(t, filepath.Join(src, "a", "b.txt"), "hello", 0o644)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--socket", f.sock, "cp", src, "0b7c6:/work"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("cp up = %d: %s", code, stderr.String())
	}
	f.mu.Lock()
	dir := f.filesDir
	f.mu.Unlock()
	if dir != "/work" {
		t.Errorf("upload went to %q, want /work", dir)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if code := run(context.Background(), []string{"--socket", f.sock, "cp", "0b7c6:/work/proj", dst}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("cp down = %d: %s", code, stderr.String())
	}
	checkFile(t, filepath.Join(dst, "proj", "a", "b.txt"), "hello", 0o644)
}

// TestCpUploadRefused checks that an upload the daemon refuses before
// reading it ends with the daemon's error, not a hang.
func TestCpUploadRefused(t *testing.T) {
	t.Parallel()
	f := startFake(t, nil)
	src := filepath.Join(t.TempDir(), "big")
	mustWrite(t, src, strings.Repeat("x", 4<<20), 0o644)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--socket", f.sock, "cp", src, "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa:/w"}, nil, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "not_found") {
		t.Errorf("cp to a missing sandbox = %d, stderr %q; want 1 and not_found", code, stderr.String())
	}
}

func TestCpMissingSource(t *testing.T) {
	t.Parallel()
	f := startFake(t, cannedSandboxes(time.Now()))
	var stdout, stderr bytes.Buffer
	missing := filepath.Join(t.TempDir(), "missing")
	code := run(context.Background(), []string{"--socket", f.sock, "cp", missing, "0b7c6:/w"}, nil, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "archive "+missing) {
		t.Errorf("cp of a missing file = %d, stderr %q; want 1 and the local error", code, stderr.String())
	}
}
