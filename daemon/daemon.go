package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/docker/docker/client"

	"github.com/sandboxd/sandboxd/reaper"
	"github.com/sandboxd/sandboxd/store"
)

// drainTimeout bounds how long a stopping daemon waits for requests in
// flight (an exec may run for minutes; it is cut at this bound).
const drainTimeout = 30 * time.Second

// startTimeout bounds the start-up reconcile.
const startTimeout = 2 * time.Minute

// Run starts the daemon and blocks until ctx ends, then stops it: it stops
// accepting, lets requests in flight finish within drainTimeout, and closes
// its connections. Sandboxes keep running; a restarted daemon picks them up.
// ready, when not nil, is called once the socket accepts requests.
func Run(ctx context.Context, cfg Config, ready func()) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	log := cfg.Logger

	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}

	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.DockerHost != "" {
		opts = append(opts, client.WithHost(cfg.DockerHost))
	}
	docker, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer docker.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = docker.Ping(pingCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("docker engine at %s: %w", docker.DaemonHost(), err)
	}

	m := &manager{cfg: cfg, st: st, docker: docker, log: log}
	w := newWatcher(m, time.Now())
	m.events = w
	rp, err := reaper.New(reaper.Config{HostID: cfg.HostID, Schedule: cfg.ReapSchedule, DryRun: cfg.ReapDryRun,
		ExitedGrace: cfg.ExitedGrace, OrphanGrace: cfg.OrphanGrace, CreateTimeout: cfg.CreateTimeout,
		Retention: cfg.Retention, Concurrency: cfg.ReapConcurrency, InSync: w.InSync, Logger: log},
		reapDocker{m}, reapStore{m})
	if err != nil {
		return err
	}
	m.reaper = rp

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
	// The socket accepts requests only once the event stream is up and the
	// table has been reconciled with the engine.
	select {
	case <-w.synced:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(startTimeout):
		_, detail := w.Status()
		return fmt.Errorf("start-up: the event stream and the first reconcile did not finish within %s: %s", startTimeout, detail)
	}

	ln, err := listen(cfg)
	if err != nil {
		return err
	}
	rp.Start()
	defer rp.Stop() // waits for a pass under way
	srv := &http.Server{
		Handler:           (&server{cfg: cfg, m: m, log: log}).handler(),
		ConnContext:       connContext,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("sandboxd ready", "socket", cfg.Socket, "host_id", cfg.HostID, "version", cfg.Version,
		"docker", docker.DaemonHost())
	if ready != nil {
		ready()
	}

	select {
	case err := <-served:
		return fmt.Errorf("serve %s: %w", cfg.Socket, err)
	case <-ctx.Done():
	}
	log.Info("sandboxd stopping: draining requests", "timeout", drainTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	log.Info("sandboxd stopped")
	return err
}
