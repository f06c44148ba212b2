package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sandboxd/sandboxd/migrations"
)

// Migrator applies schema migrations to one database with golang-migrate.
// golang-migrate holds a PostgreSQL advisory lock while it works, so daemons
// starting together migrate one after the other.
type Migrator struct {
	m    *migrate.Migrate
	db   *sql.DB
	pool *pgxpool.Pool // closed by Close when the Migrator opened it
}

// OpenMigrator connects to the database at url and prepares the migrations
// in fsys; a nil fsys means sandboxd's own (package migrations).
func OpenMigrator(ctx context.Context, url string, fsys fs.FS) (*Migrator, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	m, err := newMigrator(pool, fsys)
	if err != nil {
		pool.Close()
		return nil, err
	}
	m.pool = pool
	return m, nil
}

func newMigrator(pool *pgxpool.Pool, fsys fs.FS) (*Migrator, error) {
	if fsys == nil {
		fsys = migrations.FS
	}
	src, err := iofs.New(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	drv, err := migratepgx.WithInstance(db, &migratepgx.Config{})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare migration driver: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare migrations: %w", err)
	}
	return &Migrator{m: m, db: db}, nil
}

// Up applies every migration not yet applied.
func (m *Migrator) Up() error {
	if err := m.m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// Down reverts the last n migrations, or all of them when n is 0.
func (m *Migrator) Down(n int) error {
	var err error
	if n == 0 {
		err = m.m.Down()
	} else {
		err = m.m.Steps(-n)
	}
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate down: %w", err)
	}
	return nil
}

// Step applies one migration forward (n > 0) or back (n < 0) at a time.
// It returns fs.ErrNotExist when there is none left in that direction.
func (m *Migrator) Step(n int) error {
	err := m.m.Steps(n)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("migrate %+d: %w", n, err)
	}
	return err
}

// Version returns the version applied (0 for none) and whether a failed
// migration left the database dirty.
func (m *Migrator) Version() (version uint, dirty bool, err error) {
	v, dirty, err := m.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read migration version: %w", err)
	}
	return v, dirty, nil
}

// Close releases the Migrator's connections.
func (m *Migrator) Close() error {
	srcErr, dbErr := m.m.Close()
	if m.pool != nil {
		m.pool.Close()
	}
	return errors.Join(srcErr, dbErr)
}

// Migrate brings the store's database up to the newest schema.
func (s *Store) Migrate(ctx context.Context) error {
	m, err := newMigrator(s.pool, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Up()
}
