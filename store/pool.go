package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// InsertPooled records a pool sandbox whose container is already running:
// state pooled, no project. Writing the row after the container means a
// crash in between leaves a labelled container without a row, which the
// reaper's orphan rule removes after its grace.
func (s *Store) InsertPooled(ctx context.Context, sb Sandbox) (Sandbox, error) {
	row, err := scanSandbox(s.pool.QueryRow(ctx, `INSERT INTO docker_containers (
			id, host_id, container_id, container_name, image, image_id, state, acquired_from,
			memory_bytes, nano_cpus, pids_limit, labels, expires_at, started_at, last_event_at)
		VALUES ($1, $2, $3, $4, $5, nullif($6, ''), 'pooled', 'pool', $7, $8, $9, '{}', $10, now(), now())
		RETURNING `+columns,
		sb.ID, sb.HostID, sb.ContainerID, sb.ContainerName, sb.Image, sb.ImageID,
		sb.MemoryBytes, sb.NanoCPUs, sb.PidsLimit, sb.ExpiresAt))
	if err != nil {
		return Sandbox{}, fmt.Errorf("insert pooled sandbox %s: %w", sb.ID, err)
	}
	return row, appendEvent(ctx, s.pool, Event{SandboxID: row.ID, ContainerID: row.ContainerID,
		Action: "pooled", Source: SourceAPI, Attributes: map[string]string{"image": row.Image}})
}

// ClaimOutcome says what ClaimPooled did.
type ClaimOutcome int

// The outcomes of ClaimPooled.
const (
	NoneReady ClaimOutcome = iota // no pooled sandbox of that image: create one cold
	Claimed                       // a pooled sandbox now belongs to the request
	Existing                      // the idempotency key named an existing sandbox
)

// ClaimPooled hands a pooled sandbox of sb.Image to the request that sb
// describes: its project, limits, labels, expiry and idempotency key. It
// runs under the same host lock, idempotency check and quotas as
// InsertIntent, and takes the oldest ready sandbox with FOR UPDATE SKIP
// LOCKED, so concurrent claims never get the same one.
func (s *Store) ClaimPooled(ctx context.Context, sb Sandbox, q Quota) (Sandbox, ClaimOutcome, error) {
	out := NoneReady
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('sandboxd.create'), hashtext($1))`, sb.HostID); err != nil {
			return fmt.Errorf("lock host %s for claim: %w", sb.HostID, err)
		}
		if sb.IdempotencyKey != "" {
			prev, err := scanSandbox(tx.QueryRow(ctx, `SELECT `+columns+` FROM docker_containers
				WHERE project_id = $1 AND idempotency_key = $2 AND state <> 'failed'`, sb.ProjectID, sb.IdempotencyKey))
			switch {
			case err == nil:
				sb, out = prev, Existing
				return nil
			case !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("look up idempotency key: %w", err)
			}
		}
		if err := checkQuota(ctx, tx, sb, q); err != nil {
			return err
		}
		row, err := scanSandbox(tx.QueryRow(ctx, `UPDATE docker_containers SET
				state = 'running', project_id = $3, labels = $4,
				idempotency_key = nullif($5, ''), requested_by_uid = $6, requested_by_pid = $7,
				expires_at = $8, idle_timeout_seconds = $9, memory_bytes = $10, nano_cpus = $11,
				pids_limit = $12, last_activity_at = now(), last_event_at = greatest(last_event_at, now()),
				-- Its life as the request's sandbox starts now (--max-lifetime).
				created_at = now(),
				updated_at = now()
			WHERE id = (SELECT id FROM docker_containers
				WHERE host_id = $1 AND image = $2 AND state = 'pooled'
				ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING `+columns,
			sb.HostID, sb.Image, sb.ProjectID, labelsOrEmpty(sb.Labels), sb.IdempotencyKey,
			sb.RequestedByUID, sb.RequestedByPID, sb.ExpiresAt, int64(sb.IdleTimeout.Seconds()),
			sb.MemoryBytes, sb.NanoCPUs, sb.PidsLimit))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("claim pooled sandbox: %w", err)
		}
		sb, out = row, Claimed
		return appendEvent(ctx, tx, Event{SandboxID: row.ID, ContainerID: row.ContainerID, Action: "claim",
			Source: SourceAPI, Attributes: map[string]string{"project": row.ProjectID}})
	})
	if isUniqueViolation(err, "docker_containers_idempotency") {
		// A create on another host (another lock) used the key first.
		prev, err := scanSandbox(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM docker_containers
			WHERE project_id = $1 AND idempotency_key = $2 AND state <> 'failed'`, sb.ProjectID, sb.IdempotencyKey))
		if err != nil {
			return Sandbox{}, NoneReady, fmt.Errorf("look up idempotency key: %w", err)
		}
		return prev, Existing, nil
	}
	if err != nil {
		return Sandbox{}, NoneReady, err
	}
	return sb, out, nil
}

// RetirePooled moves a sandbox that is still pooled to removing with
// reason retired. ok is false when it is not pooled any more (a claim took
// it meanwhile): it is then not the pool's to retire.
func (s *Store) RetirePooled(ctx context.Context, id string) (sb Sandbox, ok bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		sb, err = scanSandbox(tx.QueryRow(ctx, `UPDATE docker_containers
			SET state = 'removing', removal_reason = 'retired', last_event_at = greatest(last_event_at, now()), updated_at = now()
			WHERE id = $1 AND state = 'pooled' RETURNING `+columns, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("retire pooled sandbox %s: %w", id, err)
		}
		ok = true
		return appendEvent(ctx, tx, Event{SandboxID: sb.ID, ContainerID: sb.ContainerID, Action: "retire",
			Source: SourceAPI, Attributes: map[string]string{"reason": string(ReasonRetired)}})
	})
	return sb, ok, err
}

// CountPooled counts the ready sandboxes of each pooled image on host.
func (s *Store) CountPooled(ctx context.Context, host string) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT image, count(*) FROM docker_containers
		WHERE host_id = $1 AND state = 'pooled' GROUP BY image`, host)
	if err != nil {
		return nil, fmt.Errorf("count pooled sandboxes: %w", err)
	}
	counts := map[string]int{}
	for rows.Next() {
		var image string
		var n int
		if err := rows.Scan(&image, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("count pooled sandboxes: %w", err)
		}
		counts[image] = n
	}
	return counts, rows.Err()
}
