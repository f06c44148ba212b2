// Package reaper holds sandboxd's cleanup policy: which containers and rows
// to remove each pass, and why. It reaches Docker and the store only through
// the small interfaces below, so its rules are tested without either; it
// imports neither the Docker client nor pgx.
package reaper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Sandbox is what the reaper needs to know of a live row.
type Sandbox struct {
	ID, ProjectID, ContainerID string
	State                      string // a store state: creating, running, exited, removing, ...
	CreatedAt                  time.Time
	UpdatedAt                  time.Time
	ExpiresAt                  time.Time
	LastActivityAt             time.Time
	FinishedAt                 *time.Time
	IdleTimeout                time.Duration
	RemovalReason              string
}

// Container is a container that the engine listed.
type Container struct {
	ID      string
	Name    string
	Image   string
	Labels  map[string]string
	Created time.Time
	State   string
}

// Docker is what the reaper needs from the engine.
type Docker interface {
	// ManagedContainers lists the containers of this host that carry our
	// labels, running or not.
	ManagedContainers(ctx context.Context) ([]Container, error)
	// RemoveContainer stops (with a grace period, then kills) and removes
	// a container with its anonymous volumes. A container that is already
	// gone is not an error.
	RemoveContainer(ctx context.Context, id string) error
}

// Store is what the reaper needs from the table. Each change it makes is
// recorded in the history with source reaper.
type Store interface {
	// LiveSandboxes returns every live row of the host.
	LiveSandboxes(ctx context.Context, host string) ([]Sandbox, error)
	// LockHost takes the host's reaper lock, shared by every daemon using
	// the database; ok is false when another holds it.
	LockHost(ctx context.Context, host string) (unlock func(), ok bool, err error)
	// BeginRemoval moves a row to removing with the reason.
	BeginRemoval(ctx context.Context, sb Sandbox, reason string) error
	// FinishRemoval moves a row to removed (keeping an earlier reason).
	FinishRemoval(ctx context.Context, sb Sandbox, reason string) error
	// FailCreate moves a creating row to failed.
	FailCreate(ctx context.Context, sb Sandbox, msg string) error
	// AdoptOrphan writes a row, in state removing with reason orphaned,
	// for a container that has none, from what its labels tell.
	AdoptOrphan(ctx context.Context, c Container) (Sandbox, error)
	// DeleteEnded deletes at most limit ended rows of the host older than
	// before, with their history, and says how many went.
	DeleteEnded(ctx context.Context, host string, before time.Time, limit int) (int, error)
}

// Labels the reaper checks itself on every container it would touch.
const (
	LabelManaged   = "io.sandboxd.managed"
	LabelHost      = "io.sandboxd.host"
	LabelSandboxID = "io.sandboxd.sandbox-id"
)

// Defaults of Config.
const (
	DefaultSchedule    = "@every 10s"
	DefaultExitedGrace = 5 * time.Minute
	DefaultOrphanGrace = time.Minute
	DefaultRetention   = 168 * time.Hour
	DefaultConcurrency = 8
	DefaultRunTimeout  = 2 * time.Minute
	// removingGrace is how long a row may stay removing before the reaper
	// finishes the removal: longer than a release in flight takes, so the
	// reaper rarely races one (and a race is harmless: removal is
	// idempotent). A row older than this was left by a crash or a failed
	// removal.
	removingGrace   = 15 * time.Second
	retentionBatch  = 500
	retentionRounds = 200
)

// Config configures a Reaper. Zero durations take the defaults.
type Config struct {
	HostID        string
	Schedule      string // cron spec or @every; default DefaultSchedule
	DryRun        bool   // scheduled passes plan without acting
	ExitedGrace   time.Duration
	OrphanGrace   time.Duration
	CreateTimeout time.Duration
	Retention     time.Duration
	Concurrency   int
	RunTimeout    time.Duration // deadline of one pass
	// InSync reports whether the event watcher is following the engine; the
	// orphan and vanished rules trust the table only then.
	InSync func() bool
	Logger *slog.Logger
	Now    func() time.Time // for tests; default time.Now
	// OnPass, when set, is told of every pass that ran (metrics).
	OnPass func(actions []Action, took time.Duration, dryRun bool)
}

// ErrBusy is returned by Run when another pass holds the host's lock.
var ErrBusy = errors.New("another reaper pass is running for this host")

// Reaper runs cleanup passes on a schedule and on request.
type Reaper struct {
	cfg    Config
	docker Docker
	store  Store
	log    *slog.Logger
	cron   *cron.Cron
	// ctx ends when Stop is called, so a pass under way ends quickly.
	ctx    context.Context
	cancel context.CancelFunc

	passMu sync.Mutex // one pass at a time in this process

	failMu  sync.Mutex
	failing map[string]bool // keys whose last attempt failed: logged once per streak

	lastMu   sync.Mutex
	lastPass time.Time
	lastErr  error
}

// New checks cfg and prepares a Reaper; Start schedules it.
func New(cfg Config, d Docker, s Store) (*Reaper, error) {
	if cfg.HostID == "" {
		return nil, errors.New("reaper: a host id is required")
	}
	cfg.Schedule = cmpOr(cfg.Schedule, DefaultSchedule)
	cfg.ExitedGrace = cmpOr(cfg.ExitedGrace, DefaultExitedGrace)
	cfg.OrphanGrace = cmpOr(cfg.OrphanGrace, DefaultOrphanGrace)
	cfg.CreateTimeout = cmpOr(cfg.CreateTimeout, time.Minute)
	cfg.Retention = cmpOr(cfg.Retention, DefaultRetention)
	cfg.Concurrency = cmpOr(cfg.Concurrency, DefaultConcurrency)
	cfg.RunTimeout = cmpOr(cfg.RunTimeout, DefaultRunTimeout)
	if cfg.InSync == nil {
		cfg.InSync = func() bool { return true }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With("component", "reaper")
	r := &Reaper{cfg: cfg, docker: d, store: s, log: log, failing: map[string]bool{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	// A pass never overlaps the one before, and a panic in one is logged,
	// not fatal. The order matters: SkipIfStillRunning frees its slot only
	// when the job returns, so the recovery must sit inside it, or one panic
	// would skip every later pass.
	cl := cronLogger{log}
	r.cron = cron.New(cron.WithChain(cron.SkipIfStillRunning(cl), cron.Recover(cl)), cron.WithLogger(cl))
	if _, err := r.cron.AddFunc(cfg.Schedule, r.scheduled); err != nil {
		return nil, fmt.Errorf("--reap-schedule %q: %w", cfg.Schedule, err)
	}
	return r, nil
}

// Start starts the schedule.
func (r *Reaper) Start() { r.cron.Start() }

// Stop stops the schedule, cuts a pass under way short (an action in
// flight ends with its Docker call) and waits for it to end.
func (r *Reaper) Stop() {
	done := r.cron.Stop()
	r.cancel()
	<-done.Done()
}

// LastPass says when the last pass ended and how.
func (r *Reaper) LastPass() (time.Time, error) {
	r.lastMu.Lock()
	defer r.lastMu.Unlock()
	return r.lastPass, r.lastErr
}

func (r *Reaper) scheduled() {
	_, err := r.Run(r.ctx, r.cfg.DryRun)
	switch {
	case errors.Is(err, ErrBusy):
		r.log.Debug("pass skipped", "err", err)
	case err != nil && r.ctx.Err() == nil:
		r.once("pass", fmt.Errorf("pass failed: %w", err))
	case err == nil:
		r.cleared("pass")
	}
}

// Run runs one pass now. With dryRun it only plans: nothing is changed and
// every action comes back with Done false.
func (r *Reaper) Run(ctx context.Context, dryRun bool) ([]Action, error) {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RunTimeout)
	defer cancel()
	began := time.Now()
	actions, err := r.pass(ctx, dryRun)
	if r.cfg.OnPass != nil && err == nil {
		r.cfg.OnPass(actions, time.Since(began), dryRun)
	}
	r.lastMu.Lock()
	r.lastPass, r.lastErr = r.cfg.Now(), err
	r.lastMu.Unlock()
	return actions, err
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// cronLogger writes cron's own messages to slog.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "err", err)...)
}
