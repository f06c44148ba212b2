package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Sandbox is one row of docker_containers. Optional columns are pointers or
// zero values: a zero ContainerID means the container is not made yet.
type Sandbox struct {
	ID             string
	ProjectID      string
	HostID         string
	ContainerID    string
	ContainerName  string
	Image          string
	ImageID        string
	State          State
	ExitCode       *int
	OOMKilled      bool
	MemoryBytes    int64
	NanoCPUs       int64
	PidsLimit      int64
	Labels         map[string]string
	IdempotencyKey string
	RequestedByUID *int
	RequestedByPID *int
	CreatedAt      time.Time
	StartedAt      *time.Time
	FinishedAt     *time.Time
	ExpiresAt      time.Time
	IdleTimeout    time.Duration
	LastActivityAt time.Time
	LastEventAt    *time.Time
	RemovedAt      *time.Time
	RemovalReason  Reason
	Error          string
	UpdatedAt      time.Time
	AcquiredFrom   string // "cold" or "pool"
}

// columns is the select list that scanSandbox reads, in its order.
const columns = `id::text, coalesce(project_id, ''), host_id, coalesce(container_id, ''), container_name,
	image, coalesce(image_id, ''), state, exit_code, oom_killed,
	memory_bytes, nano_cpus, pids_limit, labels, coalesce(idempotency_key, ''),
	requested_by_uid, requested_by_pid, created_at, started_at, finished_at,
	expires_at, idle_timeout_seconds, last_activity_at, last_event_at, removed_at,
	coalesce(removal_reason, ''), coalesce(error, ''), updated_at, acquired_from`

func scanSandbox(row pgx.Row) (Sandbox, error) {
	var sb Sandbox
	var idle int64
	err := row.Scan(&sb.ID, &sb.ProjectID, &sb.HostID, &sb.ContainerID, &sb.ContainerName,
		&sb.Image, &sb.ImageID, &sb.State, &sb.ExitCode, &sb.OOMKilled,
		&sb.MemoryBytes, &sb.NanoCPUs, &sb.PidsLimit, &sb.Labels, &sb.IdempotencyKey,
		&sb.RequestedByUID, &sb.RequestedByPID, &sb.CreatedAt, &sb.StartedAt, &sb.FinishedAt,
		&sb.ExpiresAt, &idle, &sb.LastActivityAt, &sb.LastEventAt, &sb.RemovedAt,
		&sb.RemovalReason, &sb.Error, &sb.UpdatedAt, &sb.AcquiredFrom)
	sb.IdleTimeout = time.Duration(idle) * time.Second
	return sb, err
}

func collectSandboxes(rows pgx.Rows) ([]Sandbox, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Sandbox, error) { return scanSandbox(r) })
}

// Quota bounds the live sandboxes of one host. Zero means no limit.
type Quota struct {
	PerProject int // live sandboxes of one project on the host
	PerHost    int // live sandboxes on the host
}

// QuotaError says which quota a create would pass. It matches ErrQuota.
type QuotaError struct {
	Scope string // "project" or "host"
	Limit int
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("quota exceeded: at most %d live sandboxes per %s", e.Limit, e.Scope)
}

// Is makes errors.Is(err, ErrQuota) true.
func (e *QuotaError) Is(target error) bool { return target == ErrQuota }

// InsertIntent writes the row of a sandbox about to be created, in state
// creating, before any container exists: if the daemon dies after this, the
// row tells reconcile and the reaper what was under way.
//
// When sb carries an idempotency key already used in its project by a sandbox
// that did not fail, nothing is written and that sandbox is returned with
// existing true. Otherwise the quota is checked and the row inserted.
// Creates on one host are serialized by a transaction-scoped advisory lock,
// so concurrent creates can neither pass a quota nor both use one key.
func (s *Store) InsertIntent(ctx context.Context, sb Sandbox, q Quota) (_ Sandbox, existing bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('sandboxd.create'), hashtext($1))`, sb.HostID); err != nil {
			return fmt.Errorf("lock host %s for create: %w", sb.HostID, err)
		}
		if sb.IdempotencyKey != "" {
			prev, err := scanSandbox(tx.QueryRow(ctx, `SELECT `+columns+` FROM docker_containers
				WHERE project_id = $1 AND idempotency_key = $2 AND state <> 'failed'`,
				sb.ProjectID, sb.IdempotencyKey))
			switch {
			case err == nil:
				sb, existing = prev, true
				return nil
			case !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("look up idempotency key: %w", err)
			}
		}
		if err := checkQuota(ctx, tx, sb, q); err != nil {
			return err
		}
		// The row and its first event in one statement: one round trip
		// fewer while the host's create lock is held.
		row, err := scanSandbox(tx.QueryRow(ctx, `WITH row AS (
				INSERT INTO docker_containers (
					id, project_id, host_id, container_name, image, state,
					memory_bytes, nano_cpus, pids_limit, labels, idempotency_key,
					requested_by_uid, requested_by_pid, expires_at, idle_timeout_seconds)
				VALUES ($1, $2, $3, $4, $5, 'creating', $6, $7, $8, $9, nullif($10, ''), $11, $12, $13, $14)
				RETURNING *
			), ev AS (
				INSERT INTO docker_container_events (sandbox_id, action, source, occurred_at, attributes)
				SELECT id, 'intent', $15, created_at, jsonb_build_object('image', image) FROM row
			)
			SELECT `+columns+` FROM row`,
			sb.ID, sb.ProjectID, sb.HostID, sb.ContainerName, sb.Image,
			sb.MemoryBytes, sb.NanoCPUs, sb.PidsLimit, labelsOrEmpty(sb.Labels), sb.IdempotencyKey,
			sb.RequestedByUID, sb.RequestedByPID, sb.ExpiresAt, int64(sb.IdleTimeout/time.Second), SourceAPI))
		if err != nil {
			return fmt.Errorf("insert sandbox %s: %w", sb.ID, err)
		}
		sb = row
		return nil
	})
	if isUniqueViolation(err, "docker_containers_idempotency") {
		// A create on another host (another lock) used the key first.
		prev, err := scanSandbox(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM docker_containers
			WHERE project_id = $1 AND idempotency_key = $2 AND state <> 'failed'`, sb.ProjectID, sb.IdempotencyKey))
		if err != nil {
			return Sandbox{}, false, fmt.Errorf("look up idempotency key: %w", err)
		}
		return prev, true, nil
	}
	if err != nil {
		return Sandbox{}, false, err
	}
	return sb, existing, nil
}

// checkQuota counts the live sandboxes of the host and of sb's project
// under the host's create lock, which the caller holds. Pool sandboxes that
// no one claimed (no project) are the host's pools, not anyone's quota.
func checkQuota(ctx context.Context, tx pgx.Tx, sb Sandbox, q Quota) error {
	var perHost, perProject int
	err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE project_id = $2)
		FROM docker_containers
		WHERE host_id = $1 AND state NOT IN ('removed', 'failed', 'pooled') AND project_id IS NOT NULL`,
		sb.HostID, sb.ProjectID).Scan(&perHost, &perProject)
	if err != nil {
		return fmt.Errorf("count live sandboxes: %w", err)
	}
	if q.PerProject > 0 && perProject >= q.PerProject {
		return &QuotaError{Scope: "project", Limit: q.PerProject}
	}
	if q.PerHost > 0 && perHost >= q.PerHost {
		return &QuotaError{Scope: "host", Limit: q.PerHost}
	}
	return nil
}

func labelsOrEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Get returns the sandbox with that id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Sandbox, error) {
	sb, err := scanSandbox(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM docker_containers WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Sandbox{}, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Sandbox{}, fmt.Errorf("get sandbox %s: %w", id, err)
	}
	return sb, nil
}

// Filter selects sandboxes for List. Zero fields do not filter.
type Filter struct {
	ProjectID     string
	HostID        string
	States        []State
	All           bool // include removed and failed rows
	ExcludePooled bool // leave out pooled sandboxes (no one's yet)
	Limit         int  // at most this many rows; 0 means no limit
}

// List returns the sandboxes that match f, newest first.
func (s *Store) List(ctx context.Context, f Filter) ([]Sandbox, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !f.All {
		where = append(where, `state NOT IN ('removed', 'failed')`)
	}
	if f.ExcludePooled {
		where = append(where, `state <> 'pooled'`)
	}
	if f.ProjectID != "" {
		where = append(where, "project_id = "+arg(f.ProjectID))
	}
	if f.HostID != "" {
		where = append(where, "host_id = "+arg(f.HostID))
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		where = append(where, "state = ANY("+arg(states)+")")
	}
	q := `SELECT ` + columns + ` FROM docker_containers`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at DESC, id"
	if f.Limit > 0 {
		q += " LIMIT " + arg(f.Limit)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	sbs, err := collectSandboxes(rows)
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	return sbs, nil
}

// ForgetKey frees a sandbox's idempotency key, for a create that failed
// after its row stopped being a failed one could (a claimed pool sandbox that
// could not be handed out): a retry with the key then makes a new sandbox
// instead of finding this one.
func (s *Store) ForgetKey(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE docker_containers SET idempotency_key = NULL, updated_at = now()
		WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("free idempotency key of sandbox %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	return nil
}

// Extend sets the expiry of a live sandbox. It returns ErrNotFound for an
// unknown id and ErrConflict when the sandbox is being removed or is gone.
func (s *Store) Extend(ctx context.Context, id string, expiresAt time.Time) (Sandbox, error) {
	sb, err := scanSandbox(s.pool.QueryRow(ctx, `UPDATE docker_containers
		SET expires_at = $2, updated_at = now()
		WHERE id = $1 AND state NOT IN ('removing', 'removed', 'failed')
		RETURNING `+columns, id, expiresAt))
	if errors.Is(err, pgx.ErrNoRows) {
		return s.explainMiss(ctx, id, "extend")
	}
	if err != nil {
		return Sandbox{}, fmt.Errorf("extend sandbox %s: %w", id, err)
	}
	return sb, nil
}

// Touch records activity in a sandbox (an exec, a file copy), which moves its
// idle deadline, and returns the row. Activity never moves backwards.
//
// The commit does not wait for the disk (synchronous_commit off): a touch
// lost in a crash only makes the idle deadline a little earlier, and an
// exec should not pay for an fsync.
func (s *Store) Touch(ctx context.Context, id string, at time.Time) (Sandbox, error) {
	sb, err := scanSandbox(s.async.QueryRow(ctx, `UPDATE docker_containers
		SET last_activity_at = greatest(last_activity_at, $2), updated_at = now()
		WHERE id = $1 RETURNING `+columns, id, at))
	if errors.Is(err, pgx.ErrNoRows) {
		return Sandbox{}, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Sandbox{}, fmt.Errorf("touch sandbox %s: %w", id, err)
	}
	return sb, nil
}

// explainMiss turns a conditional update that matched no row into
// ErrNotFound or ErrConflict.
func (s *Store) explainMiss(ctx context.Context, id, what string) (Sandbox, error) {
	sb, err := s.Get(ctx, id)
	if err != nil {
		return Sandbox{}, err
	}
	return sb, fmt.Errorf("%s sandbox %s in state %s: %w", what, id, sb.State, ErrConflict)
}

// CountLive counts the live sandboxes of host by state.
func (s *Store) CountLive(ctx context.Context, host string) (map[State]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM docker_containers
		WHERE host_id = $1 AND state NOT IN ('removed', 'failed') GROUP BY state`, host)
	if err != nil {
		return nil, fmt.Errorf("count live sandboxes: %w", err)
	}
	counts := map[State]int{}
	for rows.Next() {
		var st State
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("count live sandboxes: %w", err)
		}
		counts[st] = n
	}
	return counts, rows.Err()
}
