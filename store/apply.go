package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Applied counts what ApplyEvents did with a batch.
type Applied struct {
	Applied int // changed a row (or recorded an event-only change)
	Stale   int // older than the row's last change: recorded only
	Refused int // not allowed by the state machine: recorded only
	Unknown int // no row has that sandbox id: recorded without one
}

// EventChange is a change reported by the engine for one sandbox.
type EventChange struct {
	SandboxID string // from the container's label; may name no row
	Change
}

// ApplyEvents applies a batch of engine events in one transaction, in
// order. Every event is appended to the history; each one also changes its
// row when it is newer than the row's last change and the state machine
// allows it. A refused or stale event is not an error here: the engine
// reported what happened, and the row keeps what is newer or more certain.
func (s *Store) ApplyEvents(ctx context.Context, evs []EventChange) (Applied, error) {
	var n Applied
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		n = Applied{}
		for _, ev := range evs {
			if ev.To == "" && !ev.OOMKilled {
				// An event that changes no row (kill, stop, exec_*): one
				// statement appends it, to its row when the row matches.
				known, err := appendObserved(ctx, tx, ev)
				if err != nil {
					return err
				}
				if known {
					n.Applied++
				} else {
					n.Unknown++
				}
				continue
			}
			var cur Sandbox
			err := pgx.ErrNoRows
			if ev.SandboxID != "" {
				cur, err = scanSandbox(tx.QueryRow(ctx, `SELECT `+columns+` FROM docker_containers WHERE id = $1 FOR UPDATE`, ev.SandboxID))
			}
			if err == nil && cur.ContainerID != "" && ev.ContainerID != "" && cur.ContainerID != ev.ContainerID {
				// The label names a sandbox whose row has another container:
				// not this row's event.
				err = pgx.ErrNoRows
			}
			if errors.Is(err, pgx.ErrNoRows) {
				// A container with our labels and no row (an orphan, or a
				// row deleted by retention): keep its history anyway.
				e := ev.Event
				e.SandboxID, e.ContainerID = "", firstNonEmpty(e.ContainerID, ev.ContainerID)
				if e.OccurredAt.IsZero() {
					e.OccurredAt = ev.At
				}
				if err := appendEvent(ctx, tx, e); err != nil {
					return err
				}
				n.Unknown++
				continue
			}
			if err != nil {
				return fmt.Errorf("lock sandbox %s: %w", ev.SandboxID, err)
			}
			// A savepoint per event: one the database refuses (a broken
			// event) must not take the whole batch down, or it would be
			// retried forever.
			sp, err := tx.Begin(ctx)
			if err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
			_, stale, err := transition(ctx, sp, cur, ev.Change)
			if err != nil && !IsUnavailable(err) {
				sp.Rollback(ctx)
				if !errors.Is(err, ErrInvalidTransition) {
					err = fmt.Errorf("%w: %v", ErrInvalidTransition, err)
				}
			} else if cerr := sp.Commit(ctx); cerr != nil && err == nil {
				return fmt.Errorf("release savepoint: %w", cerr)
			}
			switch {
			case errors.Is(err, ErrInvalidTransition):
				e := ev.Event
				e.SandboxID = cur.ID
				e.ContainerID = firstNonEmpty(e.ContainerID, cur.ContainerID)
				if e.OccurredAt.IsZero() {
					e.OccurredAt = ev.At
				}
				if err := appendEvent(ctx, tx, e); err != nil {
					return err
				}
				n.Refused++
			case err != nil:
				return err
			case stale:
				n.Stale++
			default:
				n.Applied++
			}
		}
		return nil
	})
	return n, err
}

// appendObserved appends an event that changes no row, attached to the row
// its label names when that row exists and holds the same container (or
// none yet), as the full path would; known reports whether it was.
func appendObserved(ctx context.Context, tx pgx.Tx, ev EventChange) (known bool, _ error) {
	c := ev.Change
	c.At = changeTime(c.At)
	e := c.event()
	// FOR SHARE waits, as the full path's FOR UPDATE does, for a writer of
	// the row: a retention delete (the row is then gone, and the event is
	// kept without it) or a transition setting the container id (checked
	// again on the new version).
	err := tx.QueryRow(ctx, `WITH r AS (
			SELECT id, container_id FROM docker_containers
			WHERE id = nullif($1, '')::uuid
			  AND (coalesce(container_id, '') = '' OR $2 = '' OR container_id = $2)
			FOR SHARE
		)
		INSERT INTO docker_container_events
			(sandbox_id, container_id, action, source, occurred_at, attributes)
		SELECT r.id, coalesce(nullif($3, ''), nullif($2, ''), r.container_id), $4, $5, $6, $7
		FROM (SELECT 1) AS one LEFT JOIN r ON true
		RETURNING sandbox_id IS NOT NULL`,
		ev.SandboxID, ev.ContainerID, e.ContainerID, e.Action, e.Source, e.OccurredAt, labelsOrEmpty(e.Attributes)).Scan(&known)
	if err != nil {
		return false, fmt.Errorf("append event %s for sandbox %s: %w", e.Action, ev.SandboxID, err)
	}
	return known, nil
}
