package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/docker/docker/client"

	"github.com/sandboxd/sandboxd/reaper"
	"github.com/sandboxd/sandboxd/store"
)

// drainTimeout bounds how long a stopping daemon waits for requests in
// flight (an exec may run for minutes; it is cut at this bound). The
// systemd unit's TimeoutStopSec is longer.
const drainTimeout = 30 * time.Second

// startTimeout bounds the start-up reconcile.
const startTimeout = 2 * time.Minute

// Run starts the daemon and blocks until ctx ends, then stops it.
//
// Start-up, in order: migrate the database, ping Docker, follow the event
// stream and reconcile the table with the engine, then accept requests and
// start the reaper; only then does it tell systemd READY=1 (and call ready,
// when not nil).
//
// Stopping: stop accepting, let requests in flight finish within
// drainTimeout, wait for a reaper pass under way, write the events still
// queued, close the database pool. Sandboxes keep running; a restarted
// daemon reconciles and resumes them.
func Run(ctx context.Context, cfg Config, ready func()) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	log := cfg.Logger
	st, docker, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	defer docker.Close()

	met := newMetrics(cfg.Version, st, cfg.HostID)
	m := &manager{cfg: cfg, st: st, docker: docker, log: log, metrics: met}
	m.pools = newPools(m)
	w := newWatcher(m, time.Now())
	m.events = w
	rp, err := reaper.New(reaper.Config{HostID: cfg.HostID, Schedule: cfg.ReapSchedule, DryRun: cfg.ReapDryRun,
		ExitedGrace: cfg.ExitedGrace, OrphanGrace: cfg.OrphanGrace, CreateTimeout: cfg.CreateTimeout,
		Retention: cfg.Retention, Concurrency: cfg.ReapConcurrency, InSync: w.InSync, Logger: log,
		OnPass: func(actions []reaper.Action, took time.Duration, dryRun bool) {
			if !dryRun {
				met.observePass(actions, took)
			}
		}},
		reapDocker{m}, reapStore{m})
	if err != nil {
		return err
	}
	m.reaper = rp

	// The watcher outlives ctx a little: it stops after the requests have
	// drained, and writes what it still holds before it returns.
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		w.Run(watchCtx, cfg.ResyncInterval)
	}()
	defer func() {
		stopWatch()
		<-watched
	}()
	select {
	case <-w.synced:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(startTimeout):
		_, detail := w.Status()
		return fmt.Errorf("start-up: the event stream and the first reconcile did not finish within %s: %s", startTimeout, detail)
	}

	ln, activated, err := socket(cfg)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           (&server{cfg: cfg, m: m, log: log}).handler(),
		ConnContext:       connContext,
		ReadHeaderTimeout: 10 * time.Second,
		// Requests in flight keep their context when ctx ends: they are
		// drained, not cut.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	servers := []*http.Server{srv}
	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			srv.Close()
			return fmt.Errorf("--metrics-addr %s: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", met.handler())
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, msrv)
		go func() { served <- msrv.Serve(mln) }()
	}
	rp.Start()
	defer rp.Stop() // waits for a pass under way
	// The pools run even with none configured: they retire what pools of
	// an earlier configuration left behind.
	poolCtx, stopPools := context.WithCancel(context.WithoutCancel(ctx))
	pooled := make(chan struct{})
	go func() {
		defer close(pooled)
		m.pools.Run(poolCtx)
	}()
	defer func() {
		stopPools()
		<-pooled
	}()

	sd := startSystemd(m, log)
	defer sd.stop()
	log.Info("sandboxd ready", "socket", ln.Addr().String(), "socket_activated", activated, "host_id", cfg.HostID,
		"version", cfg.Version, "docker", docker.DaemonHost())
	sd.ready()
	if ready != nil {
		ready()
	}

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sd.stopping()
	log.Info("sandboxd stopping: draining requests", "timeout", drainTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	var errs []error
	for _, s := range servers {
		if err := s.Shutdown(shutdownCtx); errors.Is(err, context.DeadlineExceeded) {
			// Requests still running after the bound are cut; that is the
			// bound working, not a failed stop.
			log.Warn("requests still running after the drain bound were cut", "timeout", drainTimeout)
			s.Close()
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	for range servers {
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	log.Info("sandboxd stopped")
	return errors.Join(errs...)
}

// connect opens the database (migrating it) and the Docker client, and
// checks that both answer.
func connect(ctx context.Context, cfg Config) (*store.Store, *client.Client, error) {
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("migrate database: %w", err)
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.DockerHost != "" {
		opts = append(opts, client.WithHost(cfg.DockerHost))
	}
	docker, err := client.NewClientWithOpts(opts...)
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("docker client: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := docker.Ping(pingCtx); err != nil {
		st.Close()
		docker.Close()
		return nil, nil, fmt.Errorf("docker engine at %s: %w", docker.DaemonHost(), err)
	}
	return st, docker, nil
}

// socket returns the API listener: the one systemd passed (LISTEN_FDS,
// socket activation) when there is one, else the socket bound here.
func socket(cfg Config) (ln net.Listener, activated bool, err error) {
	lns, err := activation.Listeners()
	if err != nil {
		return nil, false, fmt.Errorf("socket activation: %w", err)
	}
	for _, l := range lns {
		// The socket unit decides the socket's path, mode and group; the
		// --socket flags are for a daemon that binds its own.
		if l != nil && l.Addr().Network() == "unix" {
			return l, true, nil
		}
	}
	ln, err = listen(cfg)
	return ln, false, err
}
