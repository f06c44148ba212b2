package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sandboxd/sandboxd/migrations"
)

// Validate is the migration validation tool. On a scratch database that it
// creates on the server of connString and drops again, it applies the
// migrations in fsys one at a time, in order. After each one it checks
//   - that every foreign key points at an existing table and column,
//   - that every foreign-key column is indexed (a leading index column), and
//   - that the migration's down exactly reverses its up: it reverts it,
//     compares the schema with the one before, and applies it again.
//
// Then it migrates all the way down, checks that nothing is left but
// golang-migrate's own table, and migrates up again. It writes one line per
// migration and check to w, and returns an error naming the migration and
// the problem at the first failure. A nil fsys means sandboxd's own
// migrations.
func Validate(ctx context.Context, connString string, fsys fs.FS, w io.Writer) error {
	if fsys == nil {
		fsys = migrations.FS
	}
	steps, err := migrationNames(fsys)
	if err != nil {
		return err
	}
	name := "sandboxd_validate_" + randomHex(6)
	if err := CreateDatabase(ctx, connString, name, ""); err != nil {
		return err
	}
	defer DropDatabase(context.WithoutCancel(ctx), connString, name)
	url, err := DatabaseURL(connString, name)
	if err != nil {
		return err
	}
	m, err := OpenMigrator(ctx, url, fsys)
	if err != nil {
		return err
	}
	defer m.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to scratch database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	fmt.Fprintf(w, "scratch database %s, %d migrations\n", name, len(steps))
	for _, st := range steps {
		fail := func(check string, err error) error {
			line(w, st, check, "FAIL: "+err.Error())
			return fmt.Errorf("migration %s: %s: %w", st, check, err)
		}
		before, err := schemaSnapshot(ctx, conn)
		if err != nil {
			return err
		}
		if err := m.Step(1); err != nil {
			return fail("up", err)
		}
		line(w, st, "up", "ok")
		n, err := checkForeignKeys(ctx, conn)
		if err != nil {
			return fail("foreign keys resolve", err)
		}
		line(w, st, "foreign keys resolve", fmt.Sprintf("ok (%d)", n))
		if err := checkForeignKeyIndexes(ctx, conn); err != nil {
			return fail("foreign keys indexed", err)
		}
		line(w, st, "foreign keys indexed", "ok")
		if err := m.Step(-1); err != nil {
			return fail("down", err)
		}
		after, err := schemaSnapshot(ctx, conn)
		if err != nil {
			return err
		}
		if d := diffSnapshots(before, after); d != "" {
			return fail("down reverses up", errors.New(d))
		}
		if err := m.Step(1); err != nil {
			return fail("up after down", err)
		}
		line(w, st, "down reverses up", "ok")
	}

	if err := m.Down(0); err != nil {
		line(w, "all", "down", "FAIL: "+err.Error())
		return fmt.Errorf("all down: %w", err)
	}
	left, err := schemaSnapshot(ctx, conn)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		line(w, "all", "down leaves nothing", "FAIL: left behind: "+strings.Join(left, "; "))
		return fmt.Errorf("all down: left behind: %s", strings.Join(left, "; "))
	}
	line(w, "all", "down leaves nothing", "ok")
	if err := m.Up(); err != nil {
		line(w, "all", "up again", "FAIL: "+err.Error())
		return fmt.Errorf("all up again: %w", err)
	}
	v, _, err := m.Version()
	if err != nil {
		return err
	}
	line(w, "all", "up again", fmt.Sprintf("ok (version %d)", v))
	return nil
}

// line writes one result line of Validate.
func line(w io.Writer, migration, check, result string) {
	fmt.Fprintf(w, "%-32s %-22s %s\n", migration, check, result)
}

var upFile = regexp.MustCompile(`^(\d+)_(.+)\.up\.sql$`)

// migrationNames lists the migrations of fsys as "000001_name", in order.
func migrationNames(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	type step struct {
		version uint64
		name    string
	}
	var steps []step
	for _, e := range entries {
		m := upFile.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		v, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("migration %s: bad version: %w", e.Name(), err)
		}
		down := strings.TrimSuffix(e.Name(), ".up.sql") + ".down.sql"
		if _, err := fs.Stat(fsys, down); err != nil {
			return nil, fmt.Errorf("migration %s: no %s", e.Name(), down)
		}
		steps = append(steps, step{v, m[1] + "_" + m[2]})
	}
	if len(steps) == 0 {
		return nil, errors.New("no migrations found")
	}
	slices.SortFunc(steps, func(a, b step) int { return int(a.version) - int(b.version) })
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.name
	}
	return names, nil
}

// checkForeignKeys returns how many foreign keys the public schema has, or an
// error naming those whose referenced table or column does not exist.
func checkForeignKeys(ctx context.Context, conn *pgx.Conn) (int, error) {
	rows, err := conn.Query(ctx, `
		SELECT c.conrelid::regclass::text || '.' || c.conname,
		       NOT EXISTS (SELECT 1 FROM pg_class t WHERE t.oid = c.confrelid)
		       OR EXISTS (SELECT 1 FROM unnest(c.confkey) AS k(attnum)
		                  WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
		                                    WHERE a.attrelid = c.confrelid AND a.attnum = k.attnum
		                                      AND NOT a.attisdropped))
		FROM pg_constraint c
		WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
		ORDER BY 1`)
	if err != nil {
		return 0, fmt.Errorf("list foreign keys: %w", err)
	}
	var n int
	var broken []string
	for rows.Next() {
		var name string
		var bad bool
		if err := rows.Scan(&name, &bad); err != nil {
			return 0, fmt.Errorf("list foreign keys: %w", err)
		}
		n++
		if bad {
			broken = append(broken, name)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("list foreign keys: %w", err)
	}
	if len(broken) > 0 {
		return n, fmt.Errorf("foreign keys pointing at no table or column: %s", strings.Join(broken, ", "))
	}
	return n, nil
}

// checkForeignKeyIndexes returns an error naming every foreign key whose
// columns are not the leading columns of some full (non-partial) index:
// without one, every delete of a referenced row scans the referencing table.
func checkForeignKeyIndexes(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, `
		SELECT c.conrelid::regclass::text || '(' ||
		       array_to_string(ARRAY(SELECT a.attname FROM pg_attribute a
		                             WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)), ', ') || ')'
		FROM pg_constraint c
		WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
		  AND NOT EXISTS (
		      SELECT 1 FROM pg_index i
		      WHERE i.indrelid = c.conrelid AND i.indpred IS NULL
		        AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
		        AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
		ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("check foreign key indexes: %w", err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("check foreign key indexes: %w", err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("foreign key columns without an index: %s", strings.Join(missing, ", "))
	}
	return nil
}

// schemaSnapshot describes every object of the public schema but
// golang-migrate's own table, one sorted line each, so two snapshots can be
// compared.
func schemaSnapshot(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `
		SELECT 'relation ' || c.relname || ' kind ' || c.relkind::text
		FROM pg_class c
		WHERE c.relnamespace = 'public'::regnamespace
		  AND c.relname NOT IN ('schema_migrations', 'schema_migrations_pkey')
		UNION ALL
		SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
		       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
		       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
		FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
		  AND c.relname <> 'schema_migrations' AND a.attnum > 0 AND NOT a.attisdropped
		UNION ALL
		SELECT 'constraint ' || conrelid::regclass::text || '.' || conname || ' ' || pg_get_constraintdef(oid)
		FROM pg_constraint
		WHERE connamespace = 'public'::regnamespace AND conname <> 'schema_migrations_pkey'
		UNION ALL
		SELECT 'index ' || indexdef FROM pg_indexes
		WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
		UNION ALL
		SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
		FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
		UNION ALL
		SELECT 'trigger ' || tgrelid::regclass::text || '.' || tgname
		FROM pg_trigger WHERE NOT tgisinternal
		  AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
		UNION ALL
		SELECT 'type ' || t.typname || ' ' || t.typtype::text
		FROM pg_type t
		WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd', 'r', 'm')
		UNION ALL
		SELECT 'extension ' || extname FROM pg_extension WHERE extname <> 'plpgsql'
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	return lines, nil
}

// diffSnapshots names what a differs from b, or returns "".
func diffSnapshots(before, after []string) string {
	var d []string
	for _, l := range after {
		if !slices.Contains(before, l) {
			d = append(d, "left behind: "+l)
		}
	}
	for _, l := range before {
		if !slices.Contains(after, l) {
			d = append(d, "missing: "+l)
		}
	}
	return strings.Join(d, "; ")
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
