package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Event is one entry of a sandbox's history (docker_container_events).
type Event struct {
	ID          int64
	SandboxID   string // empty for a container sandboxd never knew
	ContainerID string
	Action      string // a Docker action (create, start, die, ...) or sandboxd's own
	Source      Source
	OccurredAt  time.Time // Docker's time when Source is SourceDocker
	RecordedAt  time.Time
	Attributes  map[string]string
}

// AppendEvent adds e to the history.
func (s *Store) AppendEvent(ctx context.Context, e Event) error {
	return appendEvent(ctx, s.pool, e)
}

// execer is what appendEvent needs: a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func appendEvent(ctx context.Context, db execer, e Event) error {
	if e.OccurredAt.IsZero() {
		e.OccurredAt = time.Now()
	}
	_, err := db.Exec(ctx, `INSERT INTO docker_container_events
			(sandbox_id, container_id, action, source, occurred_at, attributes)
		VALUES (nullif($1, '')::uuid, nullif($2, ''), $3, $4, $5, $6)`,
		e.SandboxID, e.ContainerID, e.Action, e.Source, e.OccurredAt, labelsOrEmpty(e.Attributes))
	if err != nil {
		return fmt.Errorf("append event %s for sandbox %s: %w", e.Action, e.SandboxID, err)
	}
	return nil
}

// ListEvents returns the history of one sandbox, oldest first.
func (s *Store) ListEvents(ctx context.Context, sandboxID string) ([]Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, coalesce(sandbox_id::text, ''), coalesce(container_id, ''),
			action, source, occurred_at, recorded_at, attributes
		FROM docker_container_events WHERE sandbox_id = $1
		ORDER BY occurred_at, id`, sandboxID)
	if err != nil {
		return nil, fmt.Errorf("list events of sandbox %s: %w", sandboxID, err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		err := r.Scan(&e.ID, &e.SandboxID, &e.ContainerID, &e.Action, &e.Source, &e.OccurredAt, &e.RecordedAt, &e.Attributes)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list events of sandbox %s: %w", sandboxID, err)
	}
	return evs, nil
}
