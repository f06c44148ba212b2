package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/google/uuid"

	"github.com/sandboxd/sandboxd/store"
)

// Pool tuning.
const (
	LabelPool         = "io.sandboxd.pool"
	poolRefillWorkers = 2               // containers a pool starts at once, so refills do not starve the host
	poolCheckEvery    = 5 * time.Second // how often pools are checked besides after claims
	DefaultPoolMaxAge = time.Hour       // pool containers older than this are replaced
)

// pools keeps, for each configured image, a number of started sandboxes
// ready to be claimed (state pooled). They carry the full hardening
// template with the server's default limits.
type pools struct {
	m    *manager
	kick chan struct{}

	mu       sync.Mutex
	inflight map[string]int // refills under way, by image
}

func newPools(m *manager) *pools {
	return &pools{m: m, kick: make(chan struct{}, 1), inflight: map[string]int{}}
}

// refillSoon asks for a check without waiting for it.
func (p *pools) refillSoon() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run keeps the pools full until ctx ends, and waits for its refills.
func (p *pools) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, poolRefillWorkers)
	t := time.NewTicker(poolCheckEvery)
	defer t.Stop()
	for {
		p.retire(ctx)
		counts, err := p.m.st.CountPooled(ctx, p.m.cfg.HostID)
		if err == nil {
			for image, target := range p.m.cfg.Pools {
				p.mu.Lock()
				deficit := target - counts[image] - p.inflight[image]
				p.inflight[image] += max(deficit, 0)
				p.mu.Unlock()
				p.m.metrics.poolReady.WithLabelValues(image).Set(float64(counts[image]))
				for range max(deficit, 0) {
					wg.Go(func() {
						defer func() {
							p.mu.Lock()
							p.inflight[image]--
							p.mu.Unlock()
						}()
						select {
						case sem <- struct{}{}:
						case <-ctx.Done():
							return
						}
						defer func() { <-sem }()
						if err := p.refill(ctx, image); err != nil && ctx.Err() == nil {
							p.m.log.Warn("refill pool", "image", image, "err", err)
						}
					})
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-t.C:
		}
	}
}

// refill starts one pool sandbox. The container comes first and the row
// after it: a crash in between leaves a labelled container without a row,
// which the reaper's orphan rule removes after its grace.
func (p *pools) refill(ctx context.Context, image string) error {
	m := p.m
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.CreateTimeout)
	defer cancel()
	imageID, err := m.images.lookup(ctx, m.docker, image)
	if err != nil {
		return fmt.Errorf("look up image: %w", err)
	}
	id := uuid.NewString()
	sp := createSpec{Image: image, Workdir: m.cfg.Workdir, MemoryBytes: m.cfg.DefaultMemory,
		NanoCPUs: m.cfg.DefaultCPUs, Pids: m.cfg.DefaultPids}
	cc, hc := m.cfg.containerConfig(id, sp)
	delete(cc.Labels, LabelProject)
	cc.Labels[LabelPool] = "true"
	// The engine finishes a create even when the request is dropped, so a
	// shutdown must not cut the call short: the container would exist with
	// no one knowing its id. The call runs to its end and, if the daemon is
	// stopping meanwhile, the container is removed at once.
	callCtx, cancelCall := context.WithTimeout(context.WithoutCancel(ctx), dockerCallTimeout)
	resp, err := m.docker.ContainerCreate(callCtx, cc, hc, nil, nil, containerPrefix+id)
	cancelCall()
	if err != nil {
		return fmt.Errorf("create pool container: %w", err)
	}
	if ctx.Err() != nil {
		m.removeContainer(context.WithoutCancel(ctx), resp.ID)
		return ctx.Err()
	}
	crashPoint("pool-after-create")
	if err := m.docker.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		m.removeContainer(context.WithoutCancel(ctx), resp.ID)
		return fmt.Errorf("start pool container: %w", err)
	}
	// The row is written even when the daemon is stopping meanwhile: a
	// commit cut short can still land, and the container must not be
	// removed under a row that says it is ready.
	insCtx, cancelIns := context.WithTimeout(context.WithoutCancel(ctx), dockerCallTimeout)
	defer cancelIns()
	_, err = m.st.InsertPooled(insCtx, store.Sandbox{ID: id, HostID: m.cfg.HostID, ContainerID: resp.ID,
		ContainerName: containerPrefix + id, Image: image, ImageID: imageID, MemoryBytes: sp.MemoryBytes,
		NanoCPUs: sp.NanoCPUs, PidsLimit: sp.Pids, ExpiresAt: time.Now().Add(m.cfg.PoolMaxAge)})
	if err != nil {
		m.removeContainer(context.WithoutCancel(ctx), resp.ID)
		return err
	}
	m.metrics.poolRefill.Observe(time.Since(began).Seconds())
	return nil
}

// retire removes pool sandboxes older than --pool-max-age, and those of
// images no longer pooled; Run then starts fresh ones.
func (p *pools) retire(ctx context.Context) {
	m := p.m
	rows, err := m.st.List(ctx, store.Filter{HostID: m.cfg.HostID, States: []store.State{store.Pooled}})
	if err != nil {
		return
	}
	for _, sb := range rows {
		if _, pooled := m.cfg.Pools[sb.Image]; pooled && time.Since(sb.CreatedAt) < m.cfg.PoolMaxAge {
			continue
		}
		if _, ok, err := m.st.RetirePooled(ctx, sb.ID); err != nil || !ok {
			continue // claimed meanwhile, or changed by an event: not the pool's any more
		}
		if _, err := m.finishRemoval(ctx, sb); err != nil && !settled(err) {
			m.logWith(sb).Warn("retire pool container", "err", err) // the reaper finishes removing rows
		}
	}
}

// abandonClaim undoes a claim whose sandbox cannot be handed out. The key
// is freed first, so that a retry makes a new sandbox; then the container
// goes, and the row ends removed with reason failed and the cause.
func (m *manager) abandonClaim(ctx context.Context, sb store.Sandbox, cause error) {
	log := m.logWith(sb)
	log.Error("create failed", "err", cause)
	if err := m.st.ForgetKey(ctx, sb.ID); err != nil {
		log.Error("free idempotency key of failed claim", "err", err)
	}
	_, err := m.st.Transition(ctx, sb.ID, store.Change{To: store.Removing, Reason: store.ReasonFailed, Error: cause.Error(),
		Event: store.Event{Action: "failed", Source: store.SourceAPI, Attributes: map[string]string{"error": cause.Error()}}})
	if err != nil {
		log.Error("record failed claim", "err", err) // the row stays live; the reaper removes it at its expiry
		return
	}
	if _, err := m.finishRemoval(ctx, sb); err != nil && !settled(err) {
		log.Error("remove container of failed claim", "err", err)
	}
}

// poolable reports whether a create can be served from a pool: the pooled
// image, none of its own command, environment or workdir, and limits no
// larger than the pool's (the server's defaults).
func (c *Config) poolable(sp createSpec, hasCmd, hasEnv, hasWorkdir bool) bool {
	_, ok := c.Pools[sp.Image]
	return ok && !hasCmd && !hasEnv && !hasWorkdir &&
		sp.MemoryBytes <= c.DefaultMemory && sp.NanoCPUs <= c.DefaultCPUs && sp.Pids <= c.DefaultPids
}

// claim tries to hand the request a pooled sandbox. ok is false when the
// pool had none ready (the caller then creates one cold).
func (m *manager) claim(ctx context.Context, intent store.Sandbox, sp createSpec) (sb store.Sandbox, created, ok bool, err error) {
	quota := store.Quota{PerProject: m.cfg.MaxPerProject, PerHost: m.cfg.MaxSandboxes}
	sb, out, err := m.st.ClaimPooled(ctx, intent, quota)
	switch {
	case err != nil:
		return sb, false, true, err
	case out == store.Existing:
		sb, err = m.awaitCreated(ctx, sb)
		if err == nil && sb.State == store.Failed {
			// The attempt it waited for failed, which frees the key: this
			// request makes its own, cold.
			return sb, false, false, nil
		}
		return sb, false, true, err
	case out == store.NoneReady:
		m.metrics.poolMisses.WithLabelValues(sp.Image).Inc()
		return sb, false, false, nil
	}
	m.metrics.poolClaims.WithLabelValues(sp.Image).Inc()
	m.pools.refillSoon()
	// Smaller limits than the pool's are applied to the running container.
	if sp.MemoryBytes < m.cfg.DefaultMemory || sp.NanoCPUs < m.cfg.DefaultCPUs || sp.Pids < m.cfg.DefaultPids {
		pids := sp.Pids
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dockerCallTimeout)
		_, err := m.docker.ContainerUpdate(callCtx, sb.ContainerID, container.UpdateConfig{Resources: container.Resources{
			Memory: sp.MemoryBytes, MemorySwap: sp.MemoryBytes, NanoCPUs: sp.NanoCPUs, PidsLimit: &pids}})
		cancel()
		if err != nil {
			cause := fmt.Errorf("apply limits to a pooled sandbox: %w", err)
			m.abandonClaim(context.WithoutCancel(ctx), sb, cause)
			return sb, false, true, cause
		}
	}
	m.logWith(sb).Info("sandbox claimed from pool", "image", sp.Image)
	return sb, true, true, nil
}
