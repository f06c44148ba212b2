package daemon_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
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

// TestSandboxLifecycle walks one sandbox through every endpoint.
func TestSandboxLifecycle(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	ctx := context.Background()

	h, err := e.c.Health(ctx)
	if err != nil || h.Status != "ok" || h.Docker != "ok" || h.Database != "ok" {
		t.Fatalf("health = %+v, %v", h, err)
	}

	sb := e.create(t, api.CreateRequest{ProjectID: "proj-42", TTLSeconds: ptr(int64(300)),
		Labels: map[string]string{"purpose": "demo"}, Env: map[string]string{"GREETING": "hello"}})
	if sb.State != "running" || sb.HostID != e.cfg.HostID || len(sb.ContainerID) != 64 ||
		sb.ContainerName != "sandboxd-"+sb.ID || sb.Labels["purpose"] != "demo" || sb.StartedAt == nil {
		t.Fatalf("created sandbox = %+v", sb)
	}
	if d := time.Until(sb.ExpiresAt); d < 290*time.Second || d > 300*time.Second {
		t.Errorf("expires in %s, want about 300s", d)
	}
	row, err := e.st.Get(ctx, sb.ID)
	if err != nil || row.State != store.Running || row.RequestedByUID == nil || *row.RequestedByUID != 0 || row.RequestedByPID == nil || *row.RequestedByPID <= 0 {
		t.Fatalf("row = %+v, %v (want running with the caller's uid and pid)", row, err)
	}

	got, err := e.c.Get(ctx, sb.ID)
	if err != nil || got.ID != sb.ID || got.ContainerID != sb.ContainerID {
		t.Fatalf("get = %+v, %v", got, err)
	}
	list, err := e.c.List(ctx, client.ListOptions{ProjectID: "proj-42"})
	if err != nil || len(list) != 1 || list[0].ID != sb.ID {
		t.Fatalf("list = %+v, %v", list, err)
	}

	res, err := e.c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: []string{"sh", "-c", `echo "$GREETING $EXTRA"; pwd; cat; echo oops >&2; exit 3`},
		Stdin: "from stdin", Env: map[string]string{"EXTRA": "world"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || res.Stdout != "hello world\n/workspace\nfrom stdin" || res.Stderr != "oops\n" || res.TimedOut {
		t.Errorf("exec = %+v", res)
	}
	after, _ := e.st.Get(ctx, sb.ID)
	if !after.LastActivityAt.After(row.LastActivityAt) {
		t.Errorf("exec did not move last_activity_at (%v, was %v)", after.LastActivityAt, row.LastActivityAt)
	}

	// Files in, files out: the root filesystem is read-only, the workdir
	// and /tmp are not.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "src/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "src/main.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 6})
	tw.Write([]byte("hello\n"))
	tw.Close()
	if err := e.c.CopyTo(ctx, sb.ID, "/workspace/in", &buf); err != nil {
		t.Fatal(err)
	}
	res, err = e.c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: []string{"cat", "/workspace/in/src/main.txt"}})
	if err != nil || res.Stdout != "hello\n" {
		t.Fatalf("uploaded file reads %+v, %v", res, err)
	}
	rc, err := e.c.CopyFrom(ctx, sb.ID, "/workspace/in/src")
	if err != nil {
		t.Fatal(err)
	}
	files := readTar(t, rc)
	if files["src/main.txt"] != "hello\n" {
		t.Errorf("downloaded %v", files)
	}

	ext, err := e.c.Extend(ctx, sb.ID, time.Hour)
	if err != nil || time.Until(ext.ExpiresAt) < 59*time.Minute {
		t.Errorf("extend = %v, %v", ext.ExpiresAt, err)
	}

	gone, err := e.c.Delete(ctx, sb.ID)
	if err != nil || gone.State != "removed" || gone.RemovalReason == nil || *gone.RemovalReason != "released" || gone.RemovedAt == nil {
		t.Fatalf("delete = %+v, %v", gone, err)
	}
	if n := len(containers(t, e.docker, e.cfg.HostID)); n != 0 {
		t.Errorf("%d containers left after delete", n)
	}
	again, err := e.c.Delete(ctx, sb.ID)
	if err != nil || again.State != "removed" || !again.RemovedAt.Equal(*gone.RemovedAt) {
		t.Errorf("second delete = %+v, %v; want the same removed sandbox", again, err)
	}
	if list, _ := e.c.List(ctx, client.ListOptions{ProjectID: "proj-42"}); len(list) != 0 {
		t.Errorf("list of live sandboxes holds a removed one: %+v", list)
	}
	if list, _ := e.c.List(ctx, client.ListOptions{ProjectID: "proj-42", All: true}); len(list) != 1 {
		t.Errorf("list all = %+v, want the removed sandbox", list)
	}

	// The history holds sandboxd's own steps and, as the watcher writes
	// them, the engine's events, each in order.
	var api, docker []string
	testenv.Eventually(t, 10*time.Second, "the destroy event is recorded", func() bool {
		evs, err := e.c.Events(ctx, sb.ID)
		if err != nil {
			t.Fatal(err)
		}
		api, docker = nil, nil
		for _, ev := range evs {
			switch ev.Source {
			case "api":
				api = append(api, ev.Action)
			case "docker":
				docker = append(docker, ev.Action)
			}
		}
		return slices.Contains(docker, "destroy")
	})
	if want := []string{"intent", "start", "release", "removed"}; !slices.Equal(api, want) {
		t.Errorf("api events = %v, want %v", api, want)
	}
	if want := []string{"create", "start", "kill", "die", "stop", "destroy"}; !slices.Equal(docker, want) {
		t.Errorf("docker events = %v, want %v", docker, want)
	}
	if final, _ := e.st.Get(ctx, sb.ID); final.State != store.Removed || final.RemovalReason != store.ReasonReleased {
		t.Errorf("after the destroy event: %s/%s, want removed/released", final.State, final.RemovalReason)
	}
}

func readTar(t *testing.T, r io.ReadCloser) map[string]string {
	t.Helper()
	files, err := scanTar(r)
	if err != nil {
		t.Fatalf("read tar: %v", err)
	}
	return files
}

// TestErrorCodes provokes each error code of the API on a live daemon.
func TestErrorCodes(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *daemon.Config) {
		c.MaxPerProject = 1
		c.MaxLifetime = time.Hour
		c.MaxTTL = time.Hour
		c.MaxUploadBytes = 8 << 10
	})
	ctx := context.Background()
	sb := e.create(t, api.CreateRequest{ProjectID: "codes"})
	removed := e.create(t, api.CreateRequest{ProjectID: "codes-2"})
	if _, err := e.c.Delete(ctx, removed.ID); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 64<<10)

	for name, tc := range map[string]struct {
		call func() error
		is   func(error) bool
		msg  string
	}{
		"unknown id":    {func() error { _, err := e.c.Get(ctx, uuid.NewString()); return err }, client.IsNotFound, "not found"},
		"id not a uuid": {func() error { _, err := e.c.Get(ctx, "not-a-uuid"); return err }, client.IsInvalidArgument, "id: must be a sandbox id"},
		"exec in removed sandbox": {func() error {
			_, err := e.c.Exec(ctx, removed.ID, api.ExecRequest{Cmd: []string{"true"}})
			return err
		}, client.IsConflict, "is removed, not running"},
		"extend removed sandbox": {func() error { _, err := e.c.Extend(ctx, removed.ID, time.Minute); return err }, client.IsConflict, "only a live sandbox"},
		"extend past lifetime":   {func() error { _, err := e.c.Extend(ctx, sb.ID, time.Hour); return err }, client.IsInvalidArgument, "--max-lifetime"},
		"extend ttl zero":        {func() error { _, err := e.c.Extend(ctx, sb.ID, 0); return err }, client.IsInvalidArgument, "ttl_seconds: must be between 1 and 3600"},
		"quota per project": {func() error {
			_, _, err := e.c.Create(ctx, api.CreateRequest{ProjectID: "codes", Image: testenv.Image})
			return err
		}, client.IsQuotaExceeded, "at most 1 live sandboxes per project"},
		"upload too large":       {func() error { return e.c.CopyTo(ctx, sb.ID, "/tmp", bytes.NewReader(big)) }, client.IsPayloadTooLarge, "--max-upload-bytes"},
		"upload outside workdir": {func() error { return e.c.CopyTo(ctx, sb.ID, "/etc", tarOf(t, "f", "x")) }, client.IsInvalidArgument, "path: must lie inside /workspace or /tmp"},
		"upload with ..":         {func() error { return e.c.CopyTo(ctx, sb.ID, "/workspace/../etc", tarOf(t, "f", "x")) }, client.IsInvalidArgument, "path: must be a clean path"},
		"upload entry escaping":  {func() error { return e.c.CopyTo(ctx, sb.ID, "/workspace", tarOf(t, "../../etc/x", "x")) }, client.IsInvalidArgument, "names must be relative"},
		"upload symlink out": {func() error {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})
			tw.Close()
			return e.c.CopyTo(ctx, sb.ID, "/workspace", &buf)
		}, client.IsInvalidArgument, "points outside"},
		"download through symlink out": {func() error {
			if _, err := e.c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: []string{"ln", "-sf", "/etc", "/workspace/etc"}}); err != nil {
				return err
			}
			_, err := e.c.CopyFrom(ctx, sb.ID, "/workspace/etc")
			return err
		}, client.IsInvalidArgument, "outside /workspace and /tmp"},
		"download missing path": {func() error { _, err := e.c.CopyFrom(ctx, sb.ID, "/workspace/nope"); return err }, client.IsNotFound, "does not exist"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !tc.is(err) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want a matching error saying %q", err, tc.msg)
			}
		})
	}
	// The refused upload changed nothing.
	res, err := e.c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: []string{"ls", "-A", "/tmp"}})
	if err != nil || res.Stdout != "" {
		t.Errorf("/tmp after refused uploads: %q, %v", res.Stdout, err)
	}
}

func tarOf(t *testing.T, name, content string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))})
	tw.Write([]byte(content))
	tw.Close()
	return &buf
}

// TestDatabaseUnavailable answers 503 when PostgreSQL is gone, and says so
// in the health check.
func TestDatabaseUnavailable(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	ctx := context.Background()
	u, err := url.Parse(e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.DropDatabase(ctx, testenv.AdminURL(), strings.TrimPrefix(u.Path, "/")); err != nil {
		t.Fatal(err)
	}
	h, err := e.c.Health(ctx)
	if !client.IsUnavailable(err) || h.Status != "degraded" || h.Docker != "ok" || h.Database == "ok" {
		t.Errorf("health = %+v, %v; want degraded with the database error", h, err)
	}
	_, _, err = e.c.Create(ctx, api.CreateRequest{ProjectID: "p", Image: testenv.Image})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable || ce.Code != api.CodeUnavailable {
		t.Errorf("create without a database: %v, want 503 unavailable", err)
	}
	if n := len(containers(t, e.docker, e.cfg.HostID)); n != 0 {
		t.Errorf("%d containers made without a database", n)
	}
}
