package store

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DatabaseURL returns url with its database replaced by name: the same
// server, user and options, another database. It accepts both URL and
// keyword/value connection strings.
func DatabaseURL(connString, name string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", fmt.Errorf("parse database url: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In keyword/value strings the last setting of a key wins.
	return connString + " dbname=" + name, nil
}

// CreateDatabase creates the database name on the server of connString,
// as a copy of template when template is not empty. It connects to the
// server's maintenance database, postgres, to do so.
func CreateDatabase(ctx context.Context, connString, name, template string) error {
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		stmt += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if err := maintenance(ctx, connString, stmt); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops the database name, closing its open connections. A
// database that does not exist is not an error.
func DropDatabase(ctx context.Context, connString, name string) error {
	stmt := "DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"
	if err := maintenance(ctx, connString, stmt); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// DatabaseExists reports whether the database name exists on the server of
// connString.
func DatabaseExists(ctx context.Context, connString, name string) (bool, error) {
	conn, err := connectMaintenance(ctx, connString)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var ok bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look up database %s: %w", name, err)
	}
	return ok, nil
}

func maintenance(ctx context.Context, connString, stmt string) error {
	conn, err := connectMaintenance(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, stmt)
	return err
}

func connectMaintenance(ctx context.Context, connString string) (*pgx.Conn, error) {
	u, err := DatabaseURL(connString, "postgres")
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("connect to maintenance database: %w", err)
	}
	return conn, nil
}

// PrepareTemplate makes sure the database name exists on the server of
// connString and holds the newest schema, creating and migrating it when it
// does not. Concurrent callers (test packages run in parallel) wait for the
// first on a session advisory lock, so the template is built once. Copies
// are then cheap: CreateDatabase(ctx, connString, copy, name).
func PrepareTemplate(ctx context.Context, connString, name string) error {
	conn, err := connectMaintenance(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext('sandboxd.template'), hashtext($1))`, name); err != nil {
		return fmt.Errorf("lock template %s: %w", name, err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext('sandboxd.template'), hashtext($1))`, name)
	var exists bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists)
	if err != nil || exists {
		return err
	}
	// Build under a temporary name and rename at the end, so a template that
	// exists is always complete, even after a crash midway.
	tmp := name + "_building"
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{tmp}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop %s: %w", tmp, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{tmp}.Sanitize()); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	url, err := DatabaseURL(connString, tmp)
	if err != nil {
		return err
	}
	m, err := OpenMigrator(ctx, url, nil)
	if err != nil {
		return err
	}
	err = m.Up()
	m.Close()
	if err != nil {
		return fmt.Errorf("migrate template %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{tmp}.Sanitize()+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("rename template %s: %w", name, err)
	}
	return nil
}

// FillRemoved writes n removed rows for host, as a long-lived table would
// hold: for benchmarks of queries at scale (cmd/sandboxd-bench).
func (s *Store) FillRemoved(ctx context.Context, host string, n int) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO docker_containers (id, project_id, host_id, container_id, container_name,
			image, state, memory_bytes, nano_cpus, pids_limit, created_at, expires_at, removed_at, removal_reason, updated_at)
		SELECT gen_random_uuid(), 'bench-' || (i % 50), $1, encode(sha256(('bench' || $1 || i)::bytea), 'hex'),
			'sandboxd-bench-' || i, 'bench', 'removed', 1, 1, 1,
			now() - make_interval(secs => i), now() - make_interval(secs => i), now() - make_interval(secs => i), 'released', now() - make_interval(secs => i)
		FROM generate_series(1, $2) AS i`, host, n)
	if err != nil {
		return fmt.Errorf("fill %d removed rows: %w", n, err)
	}
	_, err = s.pool.Exec(ctx, `ANALYZE docker_containers`)
	return err
}
