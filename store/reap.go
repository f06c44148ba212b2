package store

import (
	"context"
	"fmt"
	"time"
)

// The queries below serve the reaper. Each is for one host and uses one of
// the partial indexes that docs/schema.md names.

// Expired returns the live sandboxes of host whose expires_at is not after now.
func (s *Store) Expired(ctx context.Context, host string, now time.Time) ([]Sandbox, error) {
	return s.query(ctx, "find expired sandboxes", `SELECT `+columns+` FROM docker_containers
		WHERE host_id = $1 AND state NOT IN ('removed', 'failed') AND expires_at <= $2
		ORDER BY expires_at`, host, now)
}

// Idle returns the live sandboxes of host with an idle timeout that has had
// no activity for that long at now.
func (s *Store) Idle(ctx context.Context, host string, now time.Time) ([]Sandbox, error) {
	return s.query(ctx, "find idle sandboxes", `SELECT `+columns+` FROM docker_containers
		WHERE host_id = $1 AND state NOT IN ('removed', 'failed')
		  AND idle_timeout_seconds > 0
		  AND last_activity_at + make_interval(secs => idle_timeout_seconds) <= $2
		ORDER BY last_activity_at`, host, now)
}

// Exited returns the sandboxes of host whose process ended (exited or dead)
// before the given time.
func (s *Store) Exited(ctx context.Context, host string, before time.Time) ([]Sandbox, error) {
	return s.query(ctx, "find exited sandboxes", `SELECT `+columns+` FROM docker_containers
		WHERE host_id = $1 AND state IN ('exited', 'dead') AND finished_at < $2
		ORDER BY finished_at`, host, before)
}

// StaleCreating returns the sandboxes of host still creating that were
// created before the given time: their create was cut short.
func (s *Store) StaleCreating(ctx context.Context, host string, before time.Time) ([]Sandbox, error) {
	return s.query(ctx, "find stale creating sandboxes", `SELECT `+columns+` FROM docker_containers
		WHERE host_id = $1 AND state = 'creating' AND created_at < $2
		ORDER BY created_at`, host, before)
}

// DeleteEnded deletes at most limit removed or failed rows of host that
// ended before the given time, with their history, and says how many went.
// Callers loop until it returns fewer than limit, so no single statement
// holds locks for long.
func (s *Store) DeleteEnded(ctx context.Context, host string, before time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM docker_containers WHERE id IN (
			SELECT id FROM docker_containers
			WHERE host_id = $1 AND state IN ('removed', 'failed') AND updated_at < $2
			LIMIT $3)`, host, before, limit)
	if err != nil {
		return 0, fmt.Errorf("delete ended sandboxes before %s: %w", before.Format(time.RFC3339), err)
	}
	return int(tag.RowsAffected()), nil
}

func (s *Store) query(ctx context.Context, what, sql string, args ...any) ([]Sandbox, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	sbs, err := collectSandboxes(rows)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return sbs, nil
}
