package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// writeTar writes src (a file, directory or symlink, not followed) to w as
// a tar stream whose names start with src's base name, so unpacking it in a
// directory recreates src there. Other file types are skipped with a note
// on warn.
func writeTar(w io.Writer, src string, warn io.Writer) error {
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	base := filepath.Base(abs)
	if base == string(filepath.Separator) {
		return errors.New("cannot copy the root directory")
	}
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(abs, p)
		if err != nil {
			return err
		}
		return addTarEntry(tw, p, path.Join(base, filepath.ToSlash(rel)), d, warn)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// anonymous hides the owner's names from tar.FileInfoHeader: host users
// mean nothing in a sandbox, and looking them up can be slow.
type anonymous struct{ fs.FileInfo }

func (anonymous) Uname() (string, error) { return "", nil }
func (anonymous) Gname() (string, error) { return "", nil }

// addTarEntry writes the file at p to tw under name.
func addTarEntry(tw *tar.Writer, p, name string, d fs.DirEntry, warn io.Writer) error {
	fi, err := d.Info()
	if err != nil {
		return err
	}
	var link string
	switch mode := fi.Mode(); {
	case mode.IsRegular(), mode.IsDir():
	case mode&fs.ModeSymlink != 0:
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	default:
		fmt.Fprintf(warn, "sandboxctl: skipping %s: not a regular file, directory or symlink\n", p)
		return nil
	}
	hdr, err := tar.FileInfoHeader(anonymous{fi}, link)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	// Host ids mean nothing in the sandbox; the daemon decides ownership.
	hdr.Uid, hdr.Gid = 0, 0
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	// CopyN holds the file to the size in the header: a file that grows
	// while being read must not corrupt the stream.
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// extractTar unpacks the tar stream r under the directory dst, creating it
// if missing. The stream comes from a sandbox, whose content is untrusted,
// so every entry must stay inside dst: absolute names, ".." components,
// links pointing out and entries under a symlink are refused before
// anything is written for them, and os.Root confines every write besides.
// Types other than files, directories and links are skipped with a note on
// warn.
func extractTar(r io.Reader, dst string, warn io.Writer) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	var dirs []*tar.Header
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar stream: %w", err)
		}
		if err := extractEntry(root, tr, hdr, warn); err != nil {
			return fmt.Errorf("refusing tar entry %q: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeDir && path.Clean(hdr.Name) != "." {
			dirs = append(dirs, hdr) // dst itself keeps the operator's mode
		}
	}
	// Directory modes go on last, deepest first: a read-only directory
	// would refuse the files unpacked into it.
	for _, hdr := range slices.Backward(dirs) {
		if err := root.Chmod(path.Clean(hdr.Name), hdr.FileInfo().Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// extractEntry writes one entry under root.
func extractEntry(root *os.Root, tr *tar.Reader, hdr *tar.Header, warn io.Writer) error {
	name, err := entryName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		return nil // dst itself
	}
	if err := checkParents(root, name); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return root.MkdirAll(name, 0o755)
	case tar.TypeReg:
		// Perm drops setuid, setgid and sticky: a sandbox does not get to
		// plant a setuid file on the operator's host.
		return writeEntry(root, tr, name, hdr.FileInfo().Mode().Perm())
	case tar.TypeSymlink:
		if err := checkSymlink(name, hdr.Linkname); err != nil {
			return err
		}
		return replace(root, name, func() error { return root.Symlink(hdr.Linkname, name) })
	case tar.TypeLink:
		target, err := entryName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("link target: %w", err)
		}
		return replace(root, name, func() error { return root.Link(target, name) })
	}
	fmt.Fprintf(warn, "sandboxctl: skipping %s: not a regular file, directory or link\n", hdr.Name)
	return nil
}

// entryName checks a name from the archive and cleans it.
func entryName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty name")
	case strings.HasPrefix(name, "/") || filepath.IsAbs(name):
		return "", errors.New("absolute name")
	case slices.Contains(strings.Split(name, "/"), ".."):
		return "", errors.New(`name has a ".." component`)
	}
	return path.Clean(name), nil
}

// checkParents refuses an entry whose parent directories, where they
// exist, include a symlink. An archive made by walking a tree never needs
// one, and allowing it would let a planted link ("a" -> ".") make a
// relative link checked against its name point somewhere else.
func checkParents(root *os.Root, name string) error {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		fi, err := root.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("parent %s is a symlink", dir)
		}
	}
	return nil
}

// checkSymlink refuses a symlink at name whose target leaves the
// destination: absolute, climbing above it, or with ".." after a named
// element, which would climb from wherever that element (perhaps another
// link) leads rather than from where it appears to be.
func checkSymlink(name, target string) error {
	if target == "" || path.IsAbs(target) {
		return fmt.Errorf("symlink to %q leaves the destination", target)
	}
	climbing := true
	for _, el := range strings.Split(target, "/") {
		switch {
		case el == ".." && !climbing:
			return fmt.Errorf("symlink to %q has \"..\" after a named element", target)
		case el != ".." && el != "." && el != "":
			climbing = false
		}
	}
	if to := path.Join(path.Dir(name), target); to == ".." || strings.HasPrefix(to, "../") {
		return fmt.Errorf("symlink to %q leaves the destination", target)
	}
	return nil
}

// writeEntry writes a regular file's content.
func writeEntry(root *os.Root, r io.Reader, name string, perm fs.FileMode) error {
	return replace(root, name, func() error {
		// O_EXCL after replace's removal: nothing may have put a link
		// here to write through.
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if err == nil {
			err = f.Chmod(perm) // exact bits, whatever the umask
		}
		return errors.Join(err, f.Close())
	})
}

// replace makes the parent directories of name, removes what is at name
// (an empty directory at most, never a tree) and calls create.
func replace(root *os.Root, name string, create func() error) error {
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return create()
}
