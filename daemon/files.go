package daemon

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// Files move in and out of a sandbox through tar running inside it, not
// through the engine's archive API: that API writes to the container's
// root filesystem layer, which is read-only here, and cannot see the tmpfs
// mounts (workdir, /tmp) that are the only writable places. The image must
// therefore provide tar, mkdir, realpath and test (busybox does).

const fileOpTimeout = 5 * time.Minute

// resolve creates dir when asked, resolves symlinks in it inside the
// sandbox, and checks that the real path still lies in the workdir or /tmp.
func (m *manager) resolve(ctx context.Context, containerID, p string, mkdir bool) (string, error) {
	if mkdir {
		if _, err := m.internalExec(ctx, containerID, nil, io.Discard, "mkdir", "-p", p); err != nil {
			return "", err
		}
	}
	var out strings.Builder
	if _, err := m.internalExec(ctx, containerID, nil, &out, "realpath", p); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.code == api.CodeInvalidArgument {
			return "", &apiError{http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("path: %q does not exist in the sandbox", p)}
		}
		return "", err
	}
	real := strings.TrimSpace(out.String())
	if !path.IsAbs(real) || !m.cfg.writable(real) {
		return "", invalid("path", "%q resolves to %q, outside %s and /tmp", p, real, m.cfg.Workdir)
	}
	// realpath accepts a missing last component; a download needs it.
	if _, err := m.internalExec(ctx, containerID, nil, io.Discard, "test", "-e", real); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.code == api.CodeInvalidArgument {
			return "", &apiError{http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("path: %q does not exist in the sandbox", p)}
		}
		return "", err
	}
	return real, nil
}

// internalExec runs a helper command of sandboxd's own in the sandbox. A
// non-zero exit is an invalid_argument error carrying its stderr.
func (m *manager) internalExec(ctx context.Context, containerID string, stdin io.Reader, stdout io.Writer, cmd ...string) (int, error) {
	var stderr capped
	stderr.max = 4096
	out, err := m.runExec(ctx, execRun{ContainerID: containerID, Cmd: cmd, Stdin: stdin,
		Stdout: stdout, Stderr: &stderr, Timeout: fileOpTimeout})
	if err != nil {
		return -1, err
	}
	if out.TimedOut {
		return -1, fmt.Errorf("%s in %s: timed out after %s", cmd[0], containerID, fileOpTimeout)
	}
	if out.ExitCode == 126 || out.ExitCode == 127 {
		return out.ExitCode, fmt.Errorf("the sandbox image cannot run %s, which file copies need (exit %d): %s",
			cmd[0], out.ExitCode, strings.TrimSpace(string(stderr.buf)))
	}
	if out.ExitCode != 0 {
		return out.ExitCode, invalid("path", "%s failed in the sandbox (exit %d): %s", cmd[0], out.ExitCode, strings.TrimSpace(string(stderr.buf)))
	}
	return 0, nil
}

// putFiles unpacks a tar stream under dir. The whole upload is received and
// checked before anything reaches the sandbox, so a refused upload changes
// nothing.
func (m *manager) putFiles(ctx context.Context, id, dir string, body io.Reader) error {
	if err := m.cfg.checkFilesPath(dir); err != nil {
		return err
	}
	sb, err := m.running(ctx, id)
	if err != nil {
		return err
	}
	spool, err := os.CreateTemp("", "sandboxd-upload-*.tar")
	if err != nil {
		return fmt.Errorf("spool upload: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	if _, err := io.Copy(spool, body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{http.StatusRequestEntityTooLarge, api.CodePayloadTooLarge,
				fmt.Sprintf("body: uploads must be at most %d bytes (--max-upload-bytes)", mbe.Limit)}
		}
		return fmt.Errorf("receive upload: %w", err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := checkTar(spool); err != nil {
		return err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return err
	}
	real, err := m.resolve(ctx, sb.ContainerID, dir, true)
	if err != nil {
		return err
	}
	// -o: files belong to the sandbox user, whatever the archive says.
	if _, err := m.internalExec(ctx, sb.ContainerID, spool, io.Discard, "tar", "-x", "-o", "-f", "-", "-C", real); err != nil {
		return err
	}
	_, err = m.st.Touch(ctx, id, time.Now())
	return err
}

// checkTar refuses archives whose entries would land outside the target
// directory: absolute names, "..", links that point out, and anything but
// files, directories and links.
func checkTar(r io.Reader) error {
	tr := tar.NewReader(r)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return invalid("body", "not a valid tar archive: %v", err)
		}
		n++
		if err := checkTarName(h.Name); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeDir:
		case tar.TypeSymlink:
			target := h.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(path.Clean(h.Name)), target)
			}
			if path.IsAbs(target) || target == ".." || strings.HasPrefix(target, "../") {
				return invalid("body", "entry %q: symlink to %q points outside the target directory", h.Name, h.Linkname)
			}
		case tar.TypeLink:
			if err := checkTarName(h.Linkname); err != nil {
				return err
			}
		default:
			return invalid("body", "entry %q: only files, directories and links may be uploaded (type %q)", h.Name, h.Typeflag)
		}
	}
	if n == 0 {
		return invalid("body", "the tar archive is empty")
	}
	return nil
}

func checkTarName(name string) error {
	clean := path.Clean(name)
	if name == "" || path.IsAbs(name) || clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains("/"+name+"/", "/../") {
		return invalid("body", "entry %q: names must be relative and stay inside the target directory", name)
	}
	return nil
}

// getFiles streams a tar of p (a file or a directory) to w.
func (m *manager) getFiles(ctx context.Context, id, p string, w http.ResponseWriter) error {
	if err := m.cfg.checkFilesPath(p); err != nil {
		return err
	}
	sb, err := m.running(ctx, id)
	if err != nil {
		return err
	}
	real, err := m.resolve(ctx, sb.ContainerID, p, false)
	if err != nil {
		return err
	}
	if _, err := m.st.Touch(ctx, id, time.Now()); err != nil {
		return err
	}
	out := &tarResponse{w: w}
	_, err = m.internalExec(ctx, sb.ContainerID, nil, out, "tar", "-c", "-f", "-", "-C", path.Dir(real), path.Base(real))
	switch {
	case err == nil:
		out.begin()
		return nil
	case !out.begun:
		return err // nothing sent yet: an error answer
	}
	// Part of the archive is sent under a 200 (tar goes on past a file it
	// cannot read, and fails at the end): the trailer says the archive is
	// not whole, and why.
	m.logWith(sb).Warn("stream files", "path", real, "err", err)
	ae := toAPIError(err)
	b, _ := json.Marshal(api.ErrorBody{Code: ae.code, Message: ae.msg})
	w.Header().Set(api.TrailerError, string(b))
	return nil
}

// tarResponse holds back the status of a download until the archive's first
// bytes: a tar that cannot run or fails before writing anything is answered
// with an error, not with a 200 and an empty body.
type tarResponse struct {
	w     http.ResponseWriter
	begun bool
}

func (t *tarResponse) begin() {
	if !t.begun {
		t.begun = true
		t.w.Header().Set("Content-Type", "application/x-tar")
		t.w.Header().Set("Trailer", api.TrailerError)
		t.w.WriteHeader(http.StatusOK)
	}
}

func (t *tarResponse) Write(p []byte) (int, error) {
	t.begin()
	return t.w.Write(p)
}
