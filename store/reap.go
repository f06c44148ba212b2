package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

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
	// History of containers sandboxd never had a row for goes with age too.
	strays, err := s.pool.Exec(ctx, `DELETE FROM docker_container_events WHERE id IN (
			SELECT id FROM docker_container_events
			WHERE sandbox_id IS NULL AND recorded_at < $1 LIMIT $2)`, before, limit)
	if err != nil {
		return 0, fmt.Errorf("delete old events of unknown containers: %w", err)
	}
	return int(tag.RowsAffected() + strays.RowsAffected()), nil
}

// LockHost takes the reaper lock of host: a session advisory lock, held on
// one connection until unlock is called, so that two daemons configured with
// the same host id never reap at the same time. ok is false when another
// session holds it.
func (s *Store) LockHost(ctx context.Context, host string) (unlock func(), ok bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("lock host %s: %w", host, err)
	}
	err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext('sandboxd.reaper'), hashtext($1))`, host).Scan(&ok)
	if err != nil || !ok {
		conn.Release()
		if err != nil {
			return nil, false, fmt.Errorf("lock host %s: %w", host, err)
		}
		return nil, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext('sandboxd.reaper'), hashtext($1))`, host); err != nil {
			// Closing the session is what frees a lock for sure.
			conn.Conn().Close(ctx)
		}
		conn.Release()
	}, true, nil
}

// InsertOrphan records a container that carried our labels but had no live
// row, in state removing with reason orphaned, so that operators can see
// what the reaper cleaned. sb describes it from its labels. If a row already
// holds its container id, that row is returned; if sb.ID is taken by
// another, newID gives the row a fresh one.
func (s *Store) InsertOrphan(ctx context.Context, sb Sandbox, newID func() string) (Sandbox, error) {
	for range 3 {
		row, err := scanSandbox(s.pool.QueryRow(ctx, `INSERT INTO docker_containers (
				id, project_id, host_id, container_id, container_name, image, state,
				memory_bytes, nano_cpus, pids_limit, labels, created_at, expires_at,
				removal_reason, last_event_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'removing', $7, $8, $9, $10, $11, now(), 'orphaned', now())
			ON CONFLICT DO NOTHING
			RETURNING `+columns,
			sb.ID, sb.ProjectID, sb.HostID, sb.ContainerID, sb.ContainerName, sb.Image,
			sb.MemoryBytes, sb.NanoCPUs, sb.PidsLimit, labelsOrEmpty(sb.Labels), sb.CreatedAt))
		if err == nil {
			return row, appendEvent(ctx, s.pool, Event{SandboxID: row.ID, ContainerID: row.ContainerID,
				Action: "orphan", Source: SourceReaper, Attributes: map[string]string{"reason": "orphaned"}})
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Sandbox{}, fmt.Errorf("record orphan %s: %w", sb.ContainerID, err)
		}
		prev, err := scanSandbox(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM docker_containers WHERE container_id = $1`, sb.ContainerID))
		if err == nil {
			return prev, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Sandbox{}, fmt.Errorf("record orphan %s: %w", sb.ContainerID, err)
		}
		sb.ID = newID()
	}
	return Sandbox{}, fmt.Errorf("record orphan %s: no free id", sb.ContainerID)
}
