package daemon_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
)

// TestDownloadFailure: a tar that fails inside the sandbox never reaches the
// caller as a successful download. Failing before any byte is an error
// answer; failing midway cuts the transfer, so the archive cannot be taken
// for a complete one.
func TestDownloadFailure(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	ctx := context.Background()
	sb := e.create(t, api.CreateRequest{})
	// Files the sandbox user may not read, made by root in the sandbox.
	e.rootExec(t, sb.ContainerID, "echo one > /tmp/dir/a && echo secret > /tmp/dir/b && chmod 000 /tmp/dir/b && echo secret > /tmp/locked && chmod 000 /tmp/locked")

	for _, p := range []string{"/tmp/locked", "/tmp/dir"} {
		rc, err := e.c.CopyFrom(ctx, sb.ID, p)
		if err == nil {
			_, err = scanTar(rc)
		}
		if !client.IsInvalidArgument(err) || !strings.Contains(err.Error(), "Permission denied") {
			t.Errorf("download of %s with an unreadable file: %v, want invalid_argument naming the denied read", p, err)
		}
		t.Logf("download of %s: %v", p, err)
	}
	// A readable file still downloads whole.
	rc, err := e.c.CopyFrom(ctx, sb.ID, "/tmp/dir/a")
	var files map[string]string
	if err == nil {
		files, err = scanTar(rc)
	}
	if err != nil || files["a"] != "one\n" {
		t.Errorf("download of a readable file: %q, %v", files, err)
	}
}

// rootExec runs a shell command as root in a sandbox's container, through
// the engine: set-up that the sandbox user may not do.
func (e *env) rootExec(t *testing.T, containerID, script string) {
	t.Helper()
	ctx := context.Background()
	ex, err := e.docker.ContainerExecCreate(ctx, containerID, container.ExecOptions{User: "0:0",
		Cmd: []string{"sh", "-c", "mkdir -p /tmp/dir && " + script}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	hj, err := e.docker.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(hj.Reader)
	hj.Close()
	ins, err := e.docker.ContainerExecInspect(ctx, ex.ID)
	if err != nil || ins.ExitCode != 0 {
		t.Fatalf("root exec %q: exit %d, %v: %s", script, ins.ExitCode, err, out)
	}
}

// scanTar reads a whole archive and closes it: the files by name, or an
// error for a broken or short archive.
func scanTar(r io.ReadCloser) (map[string]string, error) {
	files := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// What follows the end marker says whether the archive is whole.
			if _, err := io.Copy(io.Discard, r); err != nil {
				r.Close()
				return files, err
			}
			return files, r.Close()
		}
		if err != nil {
			r.Close()
			return files, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			r.Close()
			return files, err
		}
		files[h.Name] = string(b)
	}
}
