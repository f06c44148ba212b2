package reaper

import (
	"context"
	"fmt"
	"sync"
)

// pass is one run: snapshot, plan, act, retention.
func (r *Reaper) pass(ctx context.Context, dryRun bool) ([]Action, error) {
	host := r.cfg.HostID
	if !dryRun {
		unlock, ok, err := r.store.LockHost(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("take reaper lock of host %s: %w", host, err)
		}
		if !ok {
			return nil, ErrBusy
		}
		defer unlock()
	}
	s := snapshot{now: r.cfg.Now(), inSync: r.cfg.InSync()}
	rows, err := r.store.LiveSandboxes(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("list live sandboxes: %w", err)
	}
	s.rows = rows
	s.containers, err = r.docker.ManagedContainers(ctx)
	s.listed = err == nil
	switch {
	case err != nil:
		r.once("list", fmt.Errorf("list containers: %w; orphan and vanished rules skipped, no container removed", err))
	case !s.inSync:
		r.once("sync", fmt.Errorf("event watcher not in sync; orphan and vanished rules skipped"))
	default:
		r.cleared("list")
		r.cleared("sync")
	}
	actions := r.cfg.plan(s)
	if dryRun {
		for _, a := range actions {
			r.log.Info("dry run: would reap", "reason", a.Reason, "sandbox_id", a.SandboxID, "project_id", a.ProjectID, "container_id", a.ContainerID)
		}
		return actions, nil
	}

	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range actions {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			a := &actions[i]
			defer func() {
				// One action's panic must not take the daemon down.
				if p := recover(); p != nil {
					a.Done, a.Error = false, fmt.Sprint("panic: ", p)
					r.log.Error("reaper action panicked", "action", a.String(), "panic", p)
				}
			}()
			if err := r.act(ctx, a); err != nil {
				a.Error = err.Error()
				r.once(a.ContainerID+a.SandboxID, fmt.Errorf("%s: %w", a, err))
				return
			}
			a.Done = true
			r.cleared(a.ContainerID + a.SandboxID)
			r.log.Info("reaped", "reason", a.Reason, "sandbox_id", a.SandboxID, "project_id", a.ProjectID, "container_id", a.ContainerID)
		})
	}
	wg.Wait()

	if err := r.retention(ctx); err != nil {
		r.once("retention", err)
	} else {
		r.cleared("retention")
	}
	return actions, nil
}

// act carries out one action. A failure leaves the row as it is (live, or
// removing) so the next pass tries again.
func (r *Reaper) act(ctx context.Context, a *Action) error {
	reason := string(a.Reason)
	switch a.Reason {
	case RuleVanished:
		return r.store.FinishRemoval(ctx, a.sandbox, reason)
	case RuleStaleCreating:
		if a.sandbox.State == "created" {
			// The row has its container: it is removed as a failed create
			// (failed itself is only for rows that never had one).
			reason = "failed"
			if err := r.store.BeginRemoval(ctx, a.sandbox, reason); err != nil {
				return err
			}
			break
		}
		if err := r.store.FailCreate(ctx, a.sandbox, "create did not finish within --create-timeout"); err != nil {
			return err
		}
		if a.container != nil {
			return r.docker.RemoveContainer(ctx, a.container.ID)
		}
		return nil
	case RuleOrphaned:
		sb, err := r.store.AdoptOrphan(ctx, *a.container)
		if err != nil {
			return err
		}
		a.SandboxID, a.ProjectID = sb.ID, sb.ProjectID
		if err := r.docker.RemoveContainer(ctx, a.container.ID); err != nil {
			return err
		}
		return r.store.FinishRemoval(ctx, sb, reason)
	case RuleRemoving:
		reason = a.sandbox.RemovalReason
	default:
		if err := r.store.BeginRemoval(ctx, a.sandbox, reason); err != nil {
			return err
		}
	}
	if err := r.docker.RemoveContainer(ctx, a.container.ID); err != nil {
		return err
	}
	return r.store.FinishRemoval(ctx, a.sandbox, reason)
}

// retention deletes ended rows past --retention, in bounded batches so no
// statement holds locks for long.
func (r *Reaper) retention(ctx context.Context) error {
	before := r.cfg.Now().Add(-r.cfg.Retention)
	for range retentionRounds {
		n, err := r.store.DeleteEnded(ctx, r.cfg.HostID, before, retentionBatch)
		if err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		if n < retentionBatch {
			return nil
		}
	}
	return nil
}

// once logs a failure when its streak starts, not on every pass.
func (r *Reaper) once(key string, err error) {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	if !r.failing[key] {
		r.failing[key] = true
		r.log.Error("reaper", "err", err)
	}
}

// cleared ends a failure streak, saying so once.
func (r *Reaper) cleared(key string) {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	if r.failing[key] {
		delete(r.failing, key)
		r.log.Info("reaper recovered", "what", key)
	}
}
