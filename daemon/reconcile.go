package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/errdefs"

	"github.com/sandboxd/sandboxd/store"
)

// reconcileTimeout bounds one reconcile pass.
const reconcileTimeout = 2 * time.Minute

func (w *watcher) reconcile(ctx context.Context) error {
	w.reconcileMu.Lock()
	defer w.reconcileMu.Unlock()
	return w.reconcileLocked(ctx)
}

// errReconcileBusy: another reconcile is under way; the caller tries later.
var errReconcileBusy = errors.New("another reconcile is under way")

// tryReconcile reconciles unless another reconcile is under way.
func (w *watcher) tryReconcile(ctx context.Context) error {
	if !w.reconcileMu.TryLock() {
		return errReconcileBusy
	}
	defer w.reconcileMu.Unlock()
	return w.reconcileLocked(ctx)
}

func (w *watcher) reconcileLocked(ctx context.Context) error {
	err := w.m.reconcile(ctx)
	if err == nil {
		w.syncOnce.Do(func() { close(w.synced) })
	}
	return err
}

// engineStates maps the engine's container states to ours. The engine's
// own "removing" is missing on purpose: a container the engine is removing
// is left to the destroy event that follows.
var engineStates = map[string]store.State{
	"created": store.Created, "running": store.Running, "paused": store.Paused,
	"restarting": store.Restarting, "exited": store.Exited, "dead": store.Dead,
}

// managedContainers lists every container of this host that carries our
// labels, running or not.
func (m *manager) managedContainers(ctx context.Context) ([]container.Summary, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	list, err := m.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelHost+"="+m.cfg.HostID))})
	if err != nil {
		return nil, fmt.Errorf("list managed containers: %w", err)
	}
	return list, nil
}

// reconcile makes the live rows of this host agree with the engine:
//   - a row whose container is gone becomes removed (vanished);
//   - a creating row older than --create-timeout with no container fails;
//   - a row whose container exists takes the container's state, exit code
//     and OOM flag.
//
// A container with our labels and no live row is left to the reaper's
// orphan rule. Every change is recorded with source reconcile, as of the
// moment before the listing, so an event that arrives later wins.
func (m *manager) reconcile(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	at := time.Now()
	list, err := m.managedContainers(ctx)
	if err != nil {
		return err
	}
	rows, err := m.st.List(ctx, store.Filter{HostID: m.cfg.HostID})
	if err != nil {
		return fmt.Errorf("list live sandboxes: %w", err)
	}
	byID := make(map[string]container.Summary, len(list))
	bySandbox := make(map[string]container.Summary, len(list))
	for _, c := range list {
		byID[c.ID] = c
		bySandbox[c.Labels[LabelSandboxID]] = c
	}
	var errs []error
	for _, row := range rows {
		c, ok := byID[row.ContainerID]
		if !ok && row.ContainerID == "" {
			c, ok = bySandbox[row.ID]
		}
		if err := m.reconcileRow(ctx, at, row, c, ok); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *manager) reconcileRow(ctx context.Context, at time.Time, row store.Sandbox, c container.Summary, exists bool) error {
	change := store.Change{At: at, Event: store.Event{Action: "reconcile", Source: store.SourceReconcile,
		Attributes: map[string]string{"from": string(row.State)}}}
	switch {
	case !exists && row.State == store.Creating:
		if at.Sub(row.CreatedAt) < m.cfg.CreateTimeout {
			return nil // its create may still be under way
		}
		change.To, change.Reason = store.Failed, store.ReasonFailed
		change.Error = fmt.Sprintf("no container appeared within --create-timeout %s", m.cfg.CreateTimeout)
	case !exists:
		change.To, change.Reason = store.Removed, store.ReasonVanished
	case row.State == store.Removing:
		return nil // a removal under way, or cut short: the reaper finishes it
	case row.State == store.Pooled && c.State == "running":
		return nil // ready in its pool
	default:
		want, known := engineStates[c.State]
		if !known || (want == row.State && row.ContainerID != "") {
			return nil
		}
		ins, err := m.docker.ContainerInspect(ctx, c.ID)
		if errdefs.IsNotFound(err) {
			return nil // removed since the listing; its destroy event follows
		}
		if err != nil {
			return fmt.Errorf("inspect container %s: %w", c.ID, err)
		}
		change.To, change.ContainerID = want, c.ID
		if ins.State != nil {
			change.OOMKilled = ins.State.OOMKilled
			if want == store.Exited || want == store.Dead {
				code := ins.State.ExitCode
				change.ExitCode = &code
			}
		}
	}
	change.Event.Attributes["to"] = string(change.To)
	_, err := m.st.Transition(ctx, row.ID, change)
	switch {
	case errors.Is(err, store.ErrStale):
		return nil // an event newer than the listing got there first
	case errors.Is(err, store.ErrInvalidTransition):
		// The engine shows a state the machine has no way to: say so, and
		// let the rest of the table converge (one odd row must not keep
		// the watcher out of sync, or start-up from finishing).
		m.logWith(row).Warn("reconcile: engine state not reachable from the row's", "from", row.State, "to", change.To, "err", err)
		return nil
	case err != nil:
		return fmt.Errorf("reconcile sandbox %s: %w", row.ID, err)
	}
	m.logWith(row).Info("reconciled", "from", row.State, "to", change.To)
	return nil
}
