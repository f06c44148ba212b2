// Package store keeps the record of every sandbox in PostgreSQL: the
// docker_containers table and its append-only history,
// docker_container_events. It is the only package that imports pgx and the
// only place SQL is written.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultURL is the database sandboxd uses when none is configured: the
// local server over its Unix socket, as the connecting OS user.
const DefaultURL = "postgres:///sandboxd?host=/var/run/postgresql"

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrNotFound: no row has that id.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the row is not in a state that allows the change.
	ErrConflict = errors.New("conflict")
	// ErrQuota: a create would pass a per-project or per-host limit.
	ErrQuota = errors.New("quota exceeded")
	// ErrStale: an event is not newer than the last one applied to the row.
	ErrStale = errors.New("stale event")
)

// Store is the PostgreSQL record of sandboxes. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// async holds connections whose commits do not wait for the disk
	// (synchronous_commit off), for writes a reconcile can rebuild from the
	// engine. A session setting saves each such write the round trips of a
	// transaction block around SET LOCAL.
	async *pgxpool.Pool
}

// Open connects to the database at url. It does not migrate; see Migrate.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	// Short-lived health checks keep a pool from handing out connections
	// that died while PostgreSQL restarted.
	cfg.HealthCheckPeriod = 15 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	acfg := cfg.Copy()
	acfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	async, err := pgxpool.NewWithConfig(ctx, acfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	return &Store{pool: pool, async: async}, nil
}

// Close closes every connection; it waits for those in use to be returned.
func (s *Store) Close() {
	s.pool.Close()
	s.async.Close()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	// The second pool's writes fail with the first's, but its connections
	// are checked too, so that health says what every write would meet.
	if err := s.async.Ping(ctx); err != nil {
		return fmt.Errorf("ping database (async-commit pool): %w", err)
	}
	return nil
}

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation on
// the named constraint or index.
func isUniqueViolation(err error, name string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == name
}

// IsUnavailable reports whether err means the database could not be reached
// (as opposed to refusing a statement): the API answers 503 for these.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	// A failed connect is unavailability, whatever the server said (the
	// database may be gone, or refusing connections while it restarts); so
	// is a connection that broke in the middle of a statement.
	var connErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connErr) || errors.As(err, &netErr) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01-03: admin shutdown,
		// crash shutdown, cannot connect now.
		return pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}
