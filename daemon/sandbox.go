package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/google/uuid"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/reaper"
	"github.com/sandboxd/sandboxd/store"
)

// dockerCallTimeout bounds one Docker API call, to protect against a wedged
// engine holding a request forever.
const dockerCallTimeout = 30 * time.Second

// manager carries out the sandbox operations: it is where the API, the
// table and the engine meet.
type manager struct {
	cfg     Config
	st      *store.Store
	docker  *client.Client
	log     *slog.Logger
	events  *watcher // the event stream's state, for the health check
	reaper  *reaper.Reaper
	metrics *metrics
	images  imageCache
	pools   *pools
}

func (m *manager) logWith(sb store.Sandbox) *slog.Logger {
	return m.log.With("sandbox_id", sb.ID, "project_id", sb.ProjectID, "container_id", sb.ContainerID)
}

// create makes a sandbox: the row first (state creating), then the
// container, then the row again (running). created is false when the
// request's idempotency key named an existing sandbox.
func (m *manager) create(ctx context.Context, req api.CreateRequest, caller peer) (sb store.Sandbox, created bool, err error) {
	began := time.Now()
	sp, err := m.cfg.checkCreate(req)
	if err != nil {
		return sb, false, err
	}
	imageID, err := m.images.lookup(ctx, m.docker, sp.Image)
	if errdefs.IsNotFound(err) {
		return sb, false, invalid("image", "%q is not present on this host; sandboxd never pulls images, load it first", sp.Image)
	}
	if err != nil {
		return sb, false, fmt.Errorf("inspect image %s: %w", sp.Image, err)
	}

	id := uuid.NewString()
	uid, pid := int(caller.UID), int(caller.PID)
	intent := store.Sandbox{
		ID: id, ProjectID: sp.ProjectID, HostID: m.cfg.HostID, ContainerName: containerPrefix + id,
		Image: sp.Image, MemoryBytes: sp.MemoryBytes, NanoCPUs: sp.NanoCPUs, PidsLimit: sp.Pids,
		Labels: sp.Labels, IdempotencyKey: sp.IdempotencyKey, RequestedByUID: &uid, RequestedByPID: &pid,
		ExpiresAt: time.Now().Add(sp.TTL), IdleTimeout: sp.IdleTimeout,
	}
	if m.cfg.poolable(sp, req.Cmd != nil, len(req.Env) > 0, req.Workdir != "") {
		sb, created, ok, err := m.claim(ctx, intent, sp)
		if ok || err != nil {
			if created {
				m.metrics.createLatency.Observe(time.Since(began).Seconds())
			}
			return sb, created, err
		}
	}
	quota := store.Quota{PerProject: m.cfg.MaxPerProject, PerHost: m.cfg.MaxSandboxes}
	for attempt := 0; ; attempt++ {
		var existing bool
		sb, existing, err = m.st.InsertIntent(ctx, intent, quota)
		if err != nil {
			return sb, false, err
		}
		if !existing {
			break
		}
		sb, err = m.awaitCreated(ctx, sb)
		if err != nil || sb.State != store.Failed || attempt > 0 {
			return sb, false, err
		}
		// The attempt this request waited for failed, which frees its key:
		// this request makes its own.
	}

	crashPoint("after-intent")
	// From here the create runs to its end even if the caller goes away:
	// stopping halfway would leave work for the reaper.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.CreateTimeout)
	defer cancel()
	cc, hc := m.cfg.containerConfig(sb.ID, sp)
	resp, err := m.docker.ContainerCreate(ctx, cc, hc, nil, nil, sb.ContainerName)
	if err != nil {
		return sb, false, m.fail(ctx, sb, "", fmt.Errorf("create container: %w", err))
	}
	crashPoint("after-create")
	// The change is dated before the start call: the engine's own events
	// about this start (and a quick exit after it) are newer, and win.
	startedAt := time.Now()
	if err := m.docker.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		return sb, false, m.fail(ctx, sb, resp.ID, fmt.Errorf("start container %s: %w", resp.ID, err))
	}
	crashPoint("after-start")
	sb, err = m.st.Transition(ctx, sb.ID, store.Change{
		To: store.Running, At: startedAt, ContainerID: resp.ID, ImageID: imageID, Recoverable: true,
		Event: store.Event{Action: "start", Source: store.SourceAPI, Attributes: map[string]string{"image": sp.Image}},
	})
	if errors.Is(err, store.ErrStale) {
		// The event watcher recorded the start (or more) first.
		sb, err = m.st.Get(ctx, sb.ID)
	}
	if err != nil {
		return sb, false, m.fail(ctx, store.Sandbox{ID: id, ProjectID: sp.ProjectID}, resp.ID, fmt.Errorf("record running: %w", err))
	}
	m.metrics.createLatency.Observe(time.Since(began).Seconds())
	m.logWith(sb).Info("sandbox created", "image", sp.Image)
	return sb, true, nil
}

// fail undoes a create: it removes the container made so far (if any) and
// marks the row failed with the cause. It returns the cause.
func (m *manager) fail(ctx context.Context, sb store.Sandbox, containerID string, cause error) error {
	sb.ContainerID = containerID
	log := m.logWith(sb)
	log.Error("create failed", "err", cause)
	if containerID != "" {
		if err := m.removeContainer(ctx, containerID); err != nil {
			// The row is failed, so the container is an orphan now: the
			// reaper's orphan rule removes it after its grace.
			log.Error("remove container of failed create", "err", err)
		}
	}
	_, err := m.st.Transition(ctx, sb.ID, store.Change{To: store.Failed, At: time.Now(),
		Reason: store.ReasonFailed, Error: cause.Error(),
		Event: store.Event{Action: "failed", Source: store.SourceAPI, Attributes: map[string]string{"error": cause.Error()}}})
	if err != nil {
		log.Error("record failed create", "err", err)
	}
	return cause
}

// awaitCreated waits for a sandbox that another request is creating to
// leave the creating state, so that an idempotent retry answers with the
// finished sandbox.
func (m *manager) awaitCreated(ctx context.Context, sb store.Sandbox) (store.Sandbox, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.CreateTimeout)
	defer cancel()
	var err error
	// Created is a step of the create under way (the watcher may record
	// the engine's create event before the start).
	for sb.State == store.Creating || sb.State == store.Created {
		select {
		case <-ctx.Done():
			return sb, unavailable("sandbox " + sb.ID + " is still being created by an earlier request")
		case <-time.After(25 * time.Millisecond):
		}
		if sb, err = m.st.Get(ctx, sb.ID); err != nil {
			return sb, err
		}
	}
	return sb, nil
}

// get returns a sandbox of this host. Rows of other hosts sharing the
// database are not this daemon's to show or touch: their containers live on
// another engine.
func (m *manager) get(ctx context.Context, id string) (store.Sandbox, error) {
	sb, err := m.st.Get(ctx, id)
	if err == nil && sb.HostID != m.cfg.HostID {
		return store.Sandbox{}, fmt.Errorf("sandbox %s (host %s): %w", id, sb.HostID, store.ErrNotFound)
	}
	return sb, err
}

// release stops and removes a sandbox's container and marks it removed with
// reason released. Releasing a sandbox that is gone returns it unchanged.
func (m *manager) release(ctx context.Context, id string) (store.Sandbox, error) {
	sb, err := m.get(ctx, id)
	if err != nil {
		return sb, err
	}
	if !sb.State.Live() {
		return sb, nil
	}
	if sb.State == store.Creating {
		return sb, conflict("sandbox " + id + " is still being created; retry when it is running")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.StopTimeout+2*dockerCallTimeout)
	defer cancel()
	if sb.State != store.Removing {
		sb, err = m.st.Transition(ctx, id, store.Change{To: store.Removing, At: time.Now(), Reason: store.ReasonReleased,
			Event: store.Event{Action: "release", Source: store.SourceAPI}})
		if errors.Is(err, store.ErrInvalidTransition) {
			// Another request or the reaper finished it meanwhile.
			return m.st.Get(ctx, id)
		}
		if err != nil {
			return sb, err
		}
	}
	sb, err = m.finishRemoval(ctx, sb)
	if settled(err) {
		return m.st.Get(ctx, id)
	}
	if err == nil {
		m.logWith(sb).Info("sandbox released")
	}
	return sb, err
}

// finishRemoval removes the container of a sandbox in removing and records
// it removed. The time is taken before the call, so that the engine's own
// destroy event is newer and wins. The write is recoverable: the removing
// row (durable, with its reason) already says what was under way; if a crash
// loses this commit, reconcile finds the container gone and finishes the
// row, keeping the reason.
func (m *manager) finishRemoval(ctx context.Context, sb store.Sandbox) (store.Sandbox, error) {
	at := time.Now()
	if err := m.removeContainer(ctx, sb.ContainerID); err != nil {
		return sb, err
	}
	return m.st.Transition(ctx, sb.ID, store.Change{To: store.Removed, At: at, Recoverable: true,
		Event: store.Event{Action: "removed", Source: store.SourceAPI}})
}

// settled reports whether a recorded change was refused because the row got
// there first: the engine's destroy event, or another caller, finished it.
func settled(err error) bool {
	return errors.Is(err, store.ErrInvalidTransition) || errors.Is(err, store.ErrStale)
}

// removeContainer stops a container (SIGTERM, then SIGKILL after
// --stop-timeout) and removes it with its anonymous volumes. A container
// that is already gone counts as removed.
func (m *manager) removeContainer(ctx context.Context, id string) error {
	secs := int((m.cfg.StopTimeout + time.Second - 1) / time.Second)
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.StopTimeout+dockerCallTimeout)
	err := m.docker.ContainerStop(callCtx, id, container.StopOptions{Timeout: &secs})
	cancel()
	if err != nil && !errdefs.IsNotFound(err) && !errdefs.IsNotModified(err) {
		// Removal below is forced; a failed stop only loses the grace.
		m.log.Warn("stop container", "container_id", id, "err", err)
	}
	callCtx, cancel = context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	err = m.docker.ContainerRemove(callCtx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

// extend moves a sandbox's expiry to now + ttl, within its maximum lifetime.
func (m *manager) extend(ctx context.Context, id string, req api.ExtendRequest) (store.Sandbox, error) {
	ttl, err := m.cfg.checkTTL("ttl_seconds", req.TTLSeconds)
	if err != nil {
		return store.Sandbox{}, err
	}
	sb, err := m.get(ctx, id)
	if err != nil {
		return sb, err
	}
	expires := time.Now().Add(ttl)
	if limit := sb.CreatedAt.Add(m.cfg.MaxLifetime); expires.After(limit) {
		return sb, invalid("ttl_seconds", "%d would end at %s, past the sandbox's lifetime limit %s (created_at + --max-lifetime %s)",
			req.TTLSeconds, expires.UTC().Format(time.RFC3339), limit.UTC().Format(time.RFC3339), m.cfg.MaxLifetime)
	}
	sb, err = m.st.Extend(ctx, id, expires)
	if errors.Is(err, store.ErrConflict) {
		return sb, conflict(fmt.Sprintf("sandbox %s is %s; only a live sandbox can be extended", id, sb.State))
	}
	return sb, err
}

// running returns the sandbox if it is running, and a conflict otherwise.
func (m *manager) running(ctx context.Context, id string) (store.Sandbox, error) {
	sb, err := m.get(ctx, id)
	if err != nil {
		return sb, err
	}
	if sb.State != store.Running {
		return sb, conflict(fmt.Sprintf("sandbox %s is %s, not running", id, sb.State))
	}
	return sb, nil
}

// exec runs a command in a running sandbox.
func (m *manager) exec(ctx context.Context, id string, req api.ExecRequest) (api.ExecResult, error) {
	env, timeout, err := m.cfg.checkExec(req)
	if err != nil {
		return api.ExecResult{}, err
	}
	sb, err := m.running(ctx, id)
	if err != nil {
		return api.ExecResult{}, err
	}
	if _, err := m.st.Touch(ctx, id, time.Now()); err != nil {
		return api.ExecResult{}, err
	}
	stdout, stderr := &capped{max: m.cfg.MaxOutputBytes}, &capped{max: m.cfg.MaxOutputBytes}
	r := execRun{ContainerID: sb.ContainerID, Cmd: req.Cmd, Env: env, Workdir: req.Workdir,
		Stdout: stdout, Stderr: stderr, Timeout: timeout}
	if req.Stdin != "" {
		r.Stdin = strings.NewReader(req.Stdin)
	}
	out, err := m.runExec(ctx, r)
	if err != nil {
		return api.ExecResult{}, err
	}
	// Activity counts from the end of a long command too.
	if _, err := m.st.Touch(context.WithoutCancel(ctx), id, time.Now()); err != nil {
		m.logWith(sb).Warn("record activity", "err", err)
	}
	return api.ExecResult{ExitCode: out.ExitCode, Stdout: string(stdout.buf), Stderr: string(stderr.buf),
		TimedOut: out.TimedOut, StdoutTruncated: stdout.truncated, StderrTruncated: stderr.truncated,
		DurationMS: out.Duration.Milliseconds()}, nil
}
