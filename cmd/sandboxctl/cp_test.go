package main

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCopyArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src, dst string
		want     copySpec
		err      string
	}{
		{src: "./app", dst: "0b7c6f1e:/work", want: copySpec{id: "0b7c6f1e", remote: "/work", local: "./app", upload: true}},
		{src: "file.txt", dst: "abc:/tmp", want: copySpec{id: "abc", remote: "/tmp", local: "file.txt", upload: true}},
		{src: "abc:/etc/hosts", dst: "out", want: copySpec{id: "abc", remote: "/etc/hosts", local: "out"}},
		{src: "abc:/a:b", dst: ".", want: copySpec{id: "abc", remote: "/a:b", local: "."}},
		{src: "./a:b", dst: "abc:/x", want: copySpec{id: "abc", remote: "/x", local: "./a:b", upload: true}},
		{src: "/tmp/a:b", dst: "abc:/x", want: copySpec{id: "abc", remote: "/x", local: "/tmp/a:b", upload: true}},
		{src: "a", dst: "b", err: "one side"},
		{src: "./a", dst: "/tmp/x:y", err: "one side"},
		{src: "abc:/a", dst: "def:/b", err: "not between two sandboxes"},
		{src: ":/a", dst: "out", err: "missing sandbox ID"},
		{src: "abc:", dst: "out", err: "missing path"},
		{src: "abc:/a", dst: "", err: "missing local path"},
	}
	for _, tt := range tests {
		got, err := parseCopyArgs(tt.src, tt.dst)
		if !errMatches(err, tt.err) || tt.err == "" && got != tt.want {
			t.Errorf("parseCopyArgs(%q, %q) = %+v, %v; want %+v, error containing %q", tt.src, tt.dst, got, err, tt.want, tt.err)
		}
	}
}

// TestTarRoundTrip archives a tree with writeTar and unpacks it with
// extractTar: names under the base name, contents, modes and links survive.
func TestTarRoundTrip(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "app")
	mustWrite(t, filepath.Join(src, "main.py"), "print('hi')\n", 0o644)
	mustWrite(t, filepath.Join(src, "bin", "run.sh"), "#!/bin/sh\n", 0o750)
	mustWrite(t, filepath.Join(src, "empty"), "", 0o600)
	if err := os.Mkdir(filepath.Join(src, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../main.py", filepath.Join(src, "bin", "main")); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	if err := writeTar(&buf, src, io.Discard); err != nil {
		t.Fatalf("writeTar: %v", err)
	}
	names := tarNames(t, buf.Bytes())
	want := "app/ app/bin/ app/bin/main app/bin/run.sh app/data/ app/empty app/main.py"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("tar names = %s, want %s", got, want)
	}

	dst := filepath.Join(t.TempDir(), "new", "dir") // created by extractTar
	if err := extractTar(&buf, dst, io.Discard); err != nil {
		t.Fatalf("extractTar: %v", err)
	}
	checkFile(t, filepath.Join(dst, "app", "main.py"), "print('hi')\n", 0o644)
	checkFile(t, filepath.Join(dst, "app", "bin", "run.sh"), "#!/bin/sh\n", 0o750)
	checkFile(t, filepath.Join(dst, "app", "empty"), "", 0o600)
	if fi, err := os.Stat(filepath.Join(dst, "app", "data")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("app/data: %v, %v; want a directory with mode 0700", fi, err)
	}
	if link, err := os.Readlink(filepath.Join(dst, "app", "bin", "main")); err != nil || link != "../main.py" {
		t.Errorf("app/bin/main links to %q, %v; want ../main.py", link, err)
	}
}

func TestWriteTarSingleFile(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "notes.txt")
	mustWrite(t, src, "x", 0o640)
	var buf bytes.Buffer
	if err := writeTar(&buf, src, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tarNames(t, buf.Bytes()), " "); got != "notes.txt" {
		t.Errorf("tar names = %s, want notes.txt", got)
	}
}

// TestExtractTarRefuses feeds extractTar archives a hostile sandbox could
// send and checks that nothing lands outside the destination.
func TestExtractTarRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []tar.Header
		err     string
	}{
		{"dot-dot", []tar.Header{{Name: "../x", Typeflag: tar.TypeReg}}, `".." component`},
		{"inner dot-dot", []tar.Header{{Name: "a/../../x", Typeflag: tar.TypeReg}}, `".." component`},
		{"absolute", []tar.Header{{Name: "/tmp/x", Typeflag: tar.TypeReg}}, "absolute name"},
		{"absolute symlink", []tar.Header{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"}}, "leaves the destination"},
		{"climbing symlink", []tar.Header{{Name: "a/l", Typeflag: tar.TypeSymlink, Linkname: "../../x"}}, "leaves the destination"},
		{"named dot-dot symlink", []tar.Header{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "b/.."}}, "after a named element"},
		{"hard link out", []tar.Header{{Name: "l", Typeflag: tar.TypeLink, Linkname: "../x"}}, `".." component`},
		{"through planted symlink", []tar.Header{
			{Name: "s", Typeflag: tar.TypeSymlink, Linkname: "."},
			{Name: "s/l", Typeflag: tar.TypeSymlink, Linkname: ".."},
		}, "parent s is a symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			outer := t.TempDir()
			dst := filepath.Join(outer, "dst")
			err := extractTar(bytes.NewReader(makeTar(t, tt.entries)), dst, io.Discard)
			if !errMatches(err, tt.err) || tt.err == "" {
				t.Fatalf("extractTar = %v, want error containing %q", err, tt.err)
			}
			if _, err := os.Lstat(filepath.Join(outer, "x")); err == nil {
				t.Errorf("extractTar wrote %s outside the destination", filepath.Join(outer, "x"))
			}
		})
	}
}

func mustWrite(t *testing.T, name, content string, perm fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, perm); err != nil { // past the umask
		t.Fatal(err)
	}
}

func checkFile(t *testing.T, name, content string, perm fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil || string(b) != content {
		t.Errorf("%s = %q, %v; want %q", name, b, err, content)
		return
	}
	if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != perm {
		t.Errorf("%s mode = %v, %v; want %v", name, fi.Mode().Perm(), err, perm)
	}
}

func tarNames(t *testing.T, b []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
}

func makeTar(t *testing.T, hdrs []tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		h.Mode = 0o644
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
