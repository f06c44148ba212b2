package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// copySpec is a parsed cp command line: which sandbox, which path in it,
// which local path, and which way the files go.
type copySpec struct {
	id     string // the sandbox id or prefix, as given
	remote string // the path in the sandbox
	local  string // the local path
	upload bool   // local → sandbox
}

// cp copies a local file or directory into a sandbox, or one out of it.
// Like docker cp, the copy keeps its base name: cp ./src ID:/work makes
// /work/src.
func (c *cli) cp(ctx context.Context, args []string) error {
	f := c.newFlags("cp SRC ID:DIR | cp ID:SRC DIR")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() != 2 {
		return f.usageErr("cp takes a source and a destination")
	}
	spec, err := parseCopyArgs(f.Arg(0), f.Arg(1))
	if err != nil {
		return f.usageErr("%s", err)
	}
	id, err := c.resolve(ctx, spec.id)
	if err != nil {
		return err
	}
	if spec.upload {
		return c.upload(ctx, id, spec.local, spec.remote)
	}
	return c.download(ctx, id, spec.remote, spec.local)
}

// parseCopyArgs tells the sandbox side of cp from the local one: ID:PATH,
// where the part before the first ':' has no '/'. A local path with a
// colon in its first element is written ./a:b.
func parseCopyArgs(src, dst string) (copySpec, error) {
	srcID, srcPath, srcRemote := splitRemote(src)
	dstID, dstPath, dstRemote := splitRemote(dst)
	switch {
	case srcRemote && dstRemote:
		return copySpec{}, errors.New("cp copies between a sandbox and this host, not between two sandboxes")
	case !srcRemote && !dstRemote:
		return copySpec{}, errors.New("one side of cp must be ID:PATH in a sandbox")
	case srcRemote:
		return checkCopySpec(copySpec{id: srcID, remote: srcPath, local: dst})
	}
	return checkCopySpec(copySpec{id: dstID, remote: dstPath, local: src, upload: true})
}

func splitRemote(arg string) (id, path string, remote bool) {
	before, after, ok := strings.Cut(arg, ":")
	if !ok || strings.Contains(before, "/") {
		return "", "", false
	}
	return before, after, true
}

func checkCopySpec(s copySpec) (copySpec, error) {
	switch {
	case s.id == "":
		return s, errors.New("missing sandbox ID before ':'")
	case s.remote == "":
		return s, fmt.Errorf("missing path after %s:", s.id)
	case s.local == "":
		return s, errors.New("missing local path")
	}
	return s, nil
}

// upload streams a tar of local into dir in the sandbox. The tar is built
// as it is sent, through a pipe, so a large directory is never held in
// memory.
func (c *cli) upload(ctx context.Context, id, local, dir string) error {
	pr, pw := io.Pipe()
	tarErr := make(chan error, 1)
	go func() {
		err := writeTar(pw, local, c.stderr)
		pw.CloseWithError(err) // nil closes with io.EOF: the end of the body
		tarErr <- err
	}()
	err := c.client.CopyTo(ctx, id, dir, pr)
	// If the upload ended before the tar did, the writer is blocked on the
	// pipe; closing the read side releases it.
	pr.CloseWithError(io.ErrClosedPipe)
	// A local failure (an unreadable file) is what broke the upload too,
	// so it is the error to show. A closed pipe only echoes the upload's.
	if terr := <-tarErr; terr != nil && !errors.Is(terr, io.ErrClosedPipe) {
		return fmt.Errorf("archive %s: %w", local, terr)
	}
	return err
}

// download fetches a tar of path in the sandbox and unpacks it under the
// local directory dir, which it creates if needed.
func (c *cli) download(ctx context.Context, id, path, dir string) error {
	rc, err := c.client.CopyFrom(ctx, id, path)
	if err != nil {
		return err
	}
	err = extractTar(rc, dir, c.stderr)
	if err == nil {
		// The archive's end marker is not the stream's end: what follows
		// it says whether tar in the sandbox finished.
		_, err = io.Copy(io.Discard, rc)
	}
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return err
}
