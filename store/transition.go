package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Change is one transition of a sandbox, with what it writes besides the
// state and the event that records it.
type Change struct {
	// To is the state entered. Empty means no transition: only the event
	// is recorded, and a true OOMKilled is kept (Docker's oom, kill and
	// stop events are such).
	To State
	// At is when the change happened: Docker's own time for an engine
	// event, the time sandboxd saw the result of its call otherwise. A
	// change whose At is not after the row's last_event_at is stale: it is
	// recorded in the history but does not touch the row, so events that
	// arrive out of order never move a row backwards.
	At time.Time

	ContainerID string // set when the container becomes known
	ImageID     string
	ExitCode    *int   // set on exited or dead
	OOMKilled   bool   // sticky: once true, stays true
	Reason      Reason // for removing, removed and failed
	Error       string // for failed

	// Event is appended to the history in the same transaction. Its
	// SandboxID, ContainerID and OccurredAt are filled in when empty.
	Event Event

	// Recoverable says the change can be rebuilt from the engine if a crash
	// loses it (reconcile finds the container by its labels), so its commit
	// need not wait for the disk.
	Recoverable bool
}

// Transition applies c to the sandbox with that id in one transaction:
// it checks the state machine, updates the row and appends c.Event.
//
// It returns the row as it is afterwards and
//   - ErrNotFound for an unknown id;
//   - ErrStale, with the event still recorded, when c.At is not after the
//     row's last_event_at;
//   - an error matching ErrInvalidTransition when the state machine refuses
//     the change; nothing is written then.
func (s *Store) Transition(ctx context.Context, id string, c Change) (Sandbox, error) {
	c.At = changeTime(c.At)
	if out, ok, err := s.transitionFast(ctx, id, c); ok || err != nil {
		return out, err
	}
	var out Sandbox
	var stale bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if c.Recoverable {
			if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
				return err
			}
		}
		cur, err := scanSandbox(tx.QueryRow(ctx, `SELECT `+columns+` FROM docker_containers WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("lock sandbox %s: %w", id, err)
		}
		out, stale, err = transition(ctx, tx, cur, c)
		return err
	})
	if err != nil {
		return Sandbox{}, err
	}
	if stale {
		return out, fmt.Errorf("sandbox %s: change to %s at %s: %w", id, c.To, c.At.Format(time.RFC3339Nano), ErrStale)
	}
	return out, nil
}

// changeTime is when a change counts as made. PostgreSQL keeps
// microseconds (pgx truncates); changes compare at that precision, or a
// redelivered event would look newer than itself.
func changeTime(at time.Time) time.Time {
	if at.IsZero() {
		at = time.Now()
	}
	return at.Round(0).Truncate(time.Microsecond)
}

// transitionFast applies c in a single statement, one round trip, when the
// row exists, the state machine allows c from the row's state, and c is
// newer than the row: what sandboxd's own calls nearly always meet. ok is
// false, with nothing written, when the row did not qualify; Transition then
// takes the full path, which finds out why and answers accordingly. The
// UPDATE's own row lock and its re-check of the WHERE clause against a
// concurrent writer's version make this as safe as the full path's SELECT
// FOR UPDATE.
func (s *Store) transitionFast(ctx context.Context, id string, c Change) (_ Sandbox, ok bool, _ error) {
	if c.To == "" || c.Event.Source == "" {
		return Sandbox{}, false, nil
	}
	ev := c.event()
	db := s.pool
	if c.Recoverable {
		db = s.async
	}
	out, err := scanSandbox(db.QueryRow(ctx, `WITH next AS (
			UPDATE docker_containers SET `+transitionSet+`
			WHERE id = $1 AND state = ANY($10::text[])
			  AND (last_event_at IS NULL OR last_event_at < $3)
			  AND (NOT $11 OR coalesce(removal_reason, '') <> '' OR state = $2)
			RETURNING *
		), ev AS (
			INSERT INTO docker_container_events (sandbox_id, container_id, action, source, occurred_at, attributes)
			SELECT id, coalesce(nullif($12, ''), container_id), $13, $14, $15, $16 FROM next
		)
		SELECT `+columns+` FROM next`,
		id, c.To, c.At, c.ContainerID, c.ImageID, c.ExitCode, c.OOMKilled, c.Reason, c.Error,
		enterableFrom[c.To], c.needsReason(), ev.ContainerID, ev.Action, ev.Source, ev.OccurredAt, labelsOrEmpty(ev.Attributes)))
	if errors.Is(err, pgx.ErrNoRows) {
		return Sandbox{}, false, nil
	}
	if err != nil {
		return Sandbox{}, false, fmt.Errorf("update sandbox %s to %s: %w", id, c.To, err)
	}
	return out, true, nil
}

// event is the history entry of c, dated and named by the change when it
// says nothing itself. c.At must be set (changeTime).
func (c Change) event() Event {
	ev := c.Event
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = c.At
	}
	if ev.Action == "" {
		ev.Action = string(c.To)
	}
	return ev
}

// needsReason reports whether c enters a state that needs a removal reason
// without giving one: the row must have one already, or be in that state.
func (c Change) needsReason() bool {
	return (c.To == Removed || c.To == Removing || c.To == Failed) && c.Reason == ""
}

// transitionSet is the row update of a transition to state $2 at time $3,
// for both paths. Timestamps follow the state entered: started_at on the
// first start, finished_at when the process ends, removed_at on removal.
const transitionSet = `
	state          = $2,
	last_event_at  = $3,
	container_id   = coalesce(nullif($4, ''), container_id),
	image_id       = coalesce(nullif($5, ''), image_id),
	exit_code      = CASE WHEN $2 IN ('exited', 'dead') THEN coalesce($6, exit_code)
	                      WHEN $2 IN ('running', 'restarting') THEN NULL
	                      ELSE exit_code END,
	oom_killed     = oom_killed OR $7,
	removal_reason = CASE WHEN $2 IN ('removing', 'removed', 'failed')
	                      THEN coalesce(removal_reason, nullif($8, ''))
	                      ELSE removal_reason END,
	error          = coalesce(nullif($9, ''), error),
	started_at     = CASE WHEN $2 = 'running' THEN coalesce(started_at, $3) ELSE started_at END,
	finished_at    = CASE WHEN $2 IN ('exited', 'dead') THEN $3
	                      WHEN $2 IN ('running', 'restarting') THEN NULL
	                      ELSE finished_at END,
	removed_at     = CASE WHEN $2 = 'removed' THEN coalesce(removed_at, $3) ELSE removed_at END,
	updated_at     = now()`

// transition applies c to cur, which the caller has locked in tx.
func transition(ctx context.Context, tx pgx.Tx, cur Sandbox, c Change) (_ Sandbox, stale bool, _ error) {
	c.At = changeTime(c.At)
	ev := c.event()
	ev.SandboxID = cur.ID
	if ev.ContainerID == "" {
		ev.ContainerID = firstNonEmpty(c.ContainerID, cur.ContainerID)
	}
	if c.To == "" {
		if c.OOMKilled && !cur.OOMKilled {
			cur, err := scanSandbox(tx.QueryRow(ctx, `UPDATE docker_containers SET oom_killed = true, updated_at = now()
				WHERE id = $1 RETURNING `+columns, cur.ID))
			if err != nil {
				return Sandbox{}, false, fmt.Errorf("mark sandbox %s oom-killed: %w", cur.ID, err)
			}
			return cur, false, appendEvent(ctx, tx, ev)
		}
		return cur, false, appendEvent(ctx, tx, ev)
	}
	if cur.LastEventAt != nil && !c.At.After(*cur.LastEventAt) {
		if ev.Source != "" {
			if err := appendEvent(ctx, tx, ev); err != nil {
				return Sandbox{}, false, err
			}
		}
		return cur, true, nil
	}
	if err := CheckTransition(cur.State, c.To); err != nil {
		return Sandbox{}, false, fmt.Errorf("sandbox %s: %w", cur.ID, err)
	}
	if c.needsReason() && cur.RemovalReason == "" && c.To != cur.State {
		return Sandbox{}, false, fmt.Errorf("sandbox %s: %s needs a reason: %w", cur.ID, c.To, ErrInvalidTransition)
	}

	next, err := scanSandbox(tx.QueryRow(ctx, `UPDATE docker_containers SET `+transitionSet+`
		WHERE id = $1
		RETURNING `+columns,
		cur.ID, c.To, c.At, c.ContainerID, c.ImageID, c.ExitCode, c.OOMKilled, c.Reason, c.Error))
	if err != nil {
		return Sandbox{}, false, fmt.Errorf("update sandbox %s to %s: %w", cur.ID, c.To, err)
	}
	if ev.Source != "" {
		if err := appendEvent(ctx, tx, ev); err != nil {
			return Sandbox{}, false, err
		}
	}
	return next, false, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
