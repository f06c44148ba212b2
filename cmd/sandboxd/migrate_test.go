package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/internal/testenv"
)

// buildDaemon builds this command into a temporary folder.
func buildDaemon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sandboxd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestMigrateValidateCommand(t *testing.T) {
	t.Parallel()
	testenv.Database(t) // skips or fails when PostgreSQL is missing
	bin := buildDaemon(t)

	out, err := exec.Command(bin, "migrate", "validate", "--database-url", testenv.AdminURL()).CombinedOutput()
	if err != nil {
		t.Fatalf("validate on the real migrations: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "000001_docker_containers") || !strings.Contains(string(out), "up again") {
		t.Errorf("validate printed no per-migration lines:\n%s", out)
	}

	// A broken copy: the real migrations plus one whose foreign key has no
	// index.
	dir := t.TempDir()
	files, _ := filepath.Glob("../../migrations/*.sql")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "000099_notes.up.sql"),
		[]byte(`CREATE TABLE notes (id bigint PRIMARY KEY, sandbox_id uuid REFERENCES docker_containers (id));`), 0o644)
	os.WriteFile(filepath.Join(dir, "000099_notes.down.sql"), []byte(`DROP TABLE notes;`), 0o644)

	cmd := exec.Command(bin, "migrate", "validate", "--dir", dir, "--database-url", testenv.AdminURL())
	out, err = cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("validate on a broken copy: %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{"migration 000099_notes", "foreign key columns without an index: notes(sandbox_id)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
}
