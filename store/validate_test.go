package store_test

import (
	"bytes"
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sandboxd/sandboxd/internal/testenv"
	"github.com/sandboxd/sandboxd/migrations"
	"github.com/sandboxd/sandboxd/store"
)

// withMigration returns sandboxd's migrations plus one more.
func withMigration(t *testing.T, name, up, down string) fs.FS {
	t.Helper()
	m := fstest.MapFS{}
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(migrations.FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = &fstest.MapFile{Data: b}
	}
	m[name+".up.sql"] = &fstest.MapFile{Data: []byte(up)}
	m[name+".down.sql"] = &fstest.MapFile{Data: []byte(down)}
	return m
}

func TestValidate(t *testing.T) {
	t.Parallel()
	testenv.Database(t) // skips or fails when PostgreSQL is missing
	ctx := context.Background()

	var out bytes.Buffer
	if err := store.Validate(ctx, testenv.AdminURL(), nil, &out); err != nil {
		t.Fatalf("Validate on the real migrations: %v\n%s", err, &out)
	}
	for _, want := range []string{"000001_docker_containers", "foreign keys indexed", "down reverses up", "down leaves nothing", "up again"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, &out)
		}
	}

	for name, tc := range map[string]struct {
		up, down string
		want     []string
	}{
		"unindexed foreign key": {
			up:   `CREATE TABLE sandbox_notes (id bigint PRIMARY KEY, sandbox_id uuid REFERENCES docker_containers (id));`,
			down: `DROP TABLE sandbox_notes;`,
			want: []string{"migration 000099_broken", "foreign keys indexed", "sandbox_notes(sandbox_id)"},
		},
		"down leaves a table": {
			up:   `CREATE TABLE leftovers (id bigint PRIMARY KEY);`,
			down: `SELECT 1;`,
			want: []string{"migration 000099_broken", "down reverses up", "relation leftovers"},
		},
		"down drops too much": {
			up:   `ALTER TABLE docker_containers ADD COLUMN note text;`,
			down: `ALTER TABLE docker_containers DROP COLUMN note; DROP INDEX docker_containers_created;`,
			want: []string{"migration 000099_broken", "down reverses up", "missing: index"},
		},
		"up fails": {
			up:   `CREATE TABLE broken (id bigint PRIMARY KEY, sandbox_id uuid REFERENCES no_such_table (id));`,
			down: `DROP TABLE broken;`,
			want: []string{"migration 000099_broken", "up", "no_such_table"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := store.Validate(ctx, testenv.AdminURL(), withMigration(t, "000099_broken", tc.up, tc.down), &out)
			if err == nil {
				t.Fatalf("Validate passed a broken migration:\n%s", &out)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if !strings.Contains(out.String(), "000001_docker_containers         down reverses up       ok") {
				t.Errorf("the good migration was not reported ok first:\n%s", &out)
			}
		})
	}
}
