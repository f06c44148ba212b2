package daemon

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sandboxd/sandboxd/reaper"
	"github.com/sandboxd/sandboxd/store"
)

// reapDocker gives the reaper what it needs of the engine.
type reapDocker struct{ m *manager }

func (d reapDocker) ManagedContainers(ctx context.Context) ([]reaper.Container, error) {
	list, err := d.m.managedContainers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]reaper.Container, len(list))
	for i, c := range list {
		var name string
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		// The listing gives whole seconds; rounding up keeps the orphan
		// grace from ending early.
		out[i] = reaper.Container{ID: c.ID, Name: name, Image: c.Image, Labels: c.Labels,
			Created: time.Unix(c.Created+1, 0), State: c.State}
	}
	return out, nil
}

func (d reapDocker) RemoveContainer(ctx context.Context, id string) error {
	return d.m.removeContainer(ctx, id)
}

// reapStore gives the reaper what it needs of the table. Every change is
// recorded with source reaper and the rule that made it.
type reapStore struct{ m *manager }

func toReaper(sb store.Sandbox) reaper.Sandbox {
	return reaper.Sandbox{ID: sb.ID, ProjectID: sb.ProjectID, ContainerID: sb.ContainerID, State: string(sb.State),
		CreatedAt: sb.CreatedAt, UpdatedAt: sb.UpdatedAt, ExpiresAt: sb.ExpiresAt, LastActivityAt: sb.LastActivityAt,
		FinishedAt: sb.FinishedAt, IdleTimeout: sb.IdleTimeout, RemovalReason: string(sb.RemovalReason)}
}

func (s reapStore) LiveSandboxes(ctx context.Context, host string) ([]reaper.Sandbox, error) {
	rows, err := s.m.st.List(ctx, store.Filter{HostID: host})
	if err != nil {
		return nil, err
	}
	out := make([]reaper.Sandbox, len(rows))
	for i, r := range rows {
		out[i] = toReaper(r)
	}
	return out, nil
}

func (s reapStore) LockHost(ctx context.Context, host string) (func(), bool, error) {
	return s.m.st.LockHost(ctx, host)
}

// change writes one of the reaper's transitions. Its commit need not wait
// for the disk: if a crash loses it, the next reconcile or pass finds the
// container gone (vanished) or still due, and acts again.
func (s reapStore) change(ctx context.Context, sb reaper.Sandbox, c store.Change) error {
	c.At = time.Now()
	c.Recoverable = true
	c.Event = store.Event{Action: "reap", Source: store.SourceReaper,
		Attributes: map[string]string{"reason": string(c.Reason), "to": string(c.To)}}
	_, err := s.m.st.Transition(ctx, sb.ID, c)
	if errors.Is(err, store.ErrStale) {
		return nil // the engine's own event got there first
	}
	return err
}

func (s reapStore) BeginRemoval(ctx context.Context, sb reaper.Sandbox, reason string) error {
	return s.change(ctx, sb, store.Change{To: store.Removing, Reason: store.Reason(reason)})
}

func (s reapStore) FinishRemoval(ctx context.Context, sb reaper.Sandbox, reason string) error {
	err := s.change(ctx, sb, store.Change{To: store.Removed, Reason: store.Reason(reason)})
	if errors.Is(err, store.ErrInvalidTransition) {
		// Removed meanwhile (a destroy event or a release): done all the same.
		if cur, gerr := s.m.st.Get(ctx, sb.ID); gerr == nil && cur.State == store.Removed {
			return nil
		}
	}
	return err
}

func (s reapStore) FailCreate(ctx context.Context, sb reaper.Sandbox, msg string) error {
	return s.change(ctx, sb, store.Change{To: store.Failed, Reason: store.ReasonFailed, Error: msg})
}

// AdoptOrphan records an orphan from its labels and, for its limits, from
// the engine.
func (s reapStore) AdoptOrphan(ctx context.Context, c reaper.Container) (reaper.Sandbox, error) {
	sb := store.Sandbox{ID: c.Labels[LabelSandboxID], ProjectID: c.Labels[LabelProject], HostID: s.m.cfg.HostID,
		ContainerID: c.ID, ContainerName: c.Name, Image: c.Image, CreatedAt: c.Created, Labels: map[string]string{},
		MemoryBytes: 1, NanoCPUs: 1, PidsLimit: 1}
	if err := validID(sb.ID); err != nil {
		sb.ID = uuid.NewString()
	}
	if validProjectLike(sb.ProjectID, 64) != nil {
		sb.ProjectID = "unknown"
	}
	for k, v := range c.Labels {
		if key, ok := strings.CutPrefix(k, LabelUserPrefix); ok {
			sb.Labels[key] = v
		}
	}
	// Limits come from the engine; a container that will not say keeps
	// the smallest placeholders the schema allows.
	callCtx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	ins, err := s.m.docker.ContainerInspect(callCtx, c.ID)
	cancel()
	if err == nil && ins.HostConfig != nil {
		sb.MemoryBytes = max(ins.HostConfig.Memory, 1)
		sb.NanoCPUs = max(ins.HostConfig.NanoCPUs, 1)
		if ins.HostConfig.PidsLimit != nil {
			sb.PidsLimit = max(*ins.HostConfig.PidsLimit, 1)
		}
	}
	row, err := s.m.st.InsertOrphan(ctx, sb, uuid.NewString)
	if err != nil {
		return reaper.Sandbox{}, err
	}
	return toReaper(row), nil
}

func (s reapStore) DeleteEnded(ctx context.Context, host string, before time.Time, limit int) (int, error) {
	return s.m.st.DeleteEnded(ctx, host, before, limit)
}
