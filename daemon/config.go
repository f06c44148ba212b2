// Package daemon is sandboxd's running part: it wires the store, the Docker
// engine and the Unix-socket API together. Run starts it and returns when
// its context ends.
package daemon

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/reaper"
	"github.com/sandboxd/sandboxd/store"
)

// Config is everything sandboxd serve can be told. Zero fields take the
// defaults that docs/api.md lists (see withDefaults).
type Config struct {
	Socket      string      // Unix socket path
	SocketMode  fs.FileMode // permission bits of the socket file
	SocketGroup string      // group name or number owning the socket; "" keeps the daemon's
	AllowUIDs   []uint32    // callers allowed besides root and the daemon's own uid
	AllowGIDs   []uint32    // callers whose gid is one of these are allowed

	DatabaseURL string
	DockerHost  string // empty: DOCKER_HOST or the default socket
	HostID      string // names this daemon and engine in the table; default the hostname

	AllowImages   []string // exact references, or patterns ending in "*"
	DefaultTTL    time.Duration
	MaxTTL        time.Duration
	MaxLifetime   time.Duration // extend may not push expiry past created_at + this
	MaxPerProject int
	MaxSandboxes  int

	DefaultMemory int64
	MaxMemory     int64
	DefaultCPUs   int64 // nano-CPUs
	MaxCPUs       int64 // nano-CPUs
	DefaultPids   int64
	MaxPids       int64

	SandboxUser string // uid:gid the sandbox's processes run as
	Workdir     string
	WorkdirSize int64
	TmpSize     int64
	Runtime     string // OCI runtime, e.g. runsc; empty: the engine's default

	StopTimeout    time.Duration
	CreateTimeout  time.Duration // bound on one create; a creating row older than this has failed
	ResyncInterval time.Duration // full reconcile this often, besides events
	MaxOutputBytes int64
	MaxExecTimeout time.Duration
	MaxUploadBytes int64

	ReapSchedule    string // cron spec or @every
	ReapDryRun      bool   // scheduled passes plan without acting
	ReapConcurrency int
	ExitedGrace     time.Duration
	OrphanGrace     time.Duration
	Retention       time.Duration

	MetricsAddr string // TCP address serving /metrics; empty: only on the socket

	Pools      map[string]int // image -> sandboxes kept started ahead
	PoolMaxAge time.Duration  // pool containers older than this are replaced

	Version string
	Logger  *slog.Logger
}

// Defaults, as documented in docs/api.md and the README.
const (
	DefaultSocketMode     = 0o660
	DefaultTTL            = 10 * time.Minute
	DefaultMaxTTL         = 24 * time.Hour
	DefaultMaxLifetime    = 24 * time.Hour
	DefaultMaxPerProject  = 16
	DefaultMaxSandboxes   = 256
	DefaultMemory         = 512 << 20
	DefaultMaxMemory      = 4 << 30
	DefaultCPUs           = 1e9
	DefaultMaxCPUs        = 4e9
	DefaultPids           = 128
	DefaultMaxPids        = 1024
	DefaultSandboxUser    = "65534:65534"
	DefaultWorkdir        = "/workspace"
	DefaultWorkdirSize    = 256 << 20
	DefaultTmpSize        = 64 << 20
	DefaultStopTimeout    = 2 * time.Second
	DefaultCreateTimeout  = time.Minute
	DefaultResyncInterval = 5 * time.Minute
	DefaultMaxOutputBytes = 1 << 20
	DefaultExecTimeout    = 60 * time.Second
	DefaultMaxExecTimeout = 10 * time.Minute
	DefaultMaxUploadBytes = 64 << 20
)

// withDefaults fills every zero field and checks the result once, so the
// rest of the daemon can trust its configuration.
func (c Config) withDefaults() (Config, error) {
	c.Socket = cmp.Or(c.Socket, api.DefaultSocket)
	c.SocketMode = cmp.Or(c.SocketMode, DefaultSocketMode)
	c.DatabaseURL = cmp.Or(c.DatabaseURL, store.DefaultURL)
	if c.HostID == "" {
		h, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("--host-id: not set and no hostname: %w", err)
		}
		c.HostID = h
	}
	c.DefaultTTL = cmp.Or(c.DefaultTTL, DefaultTTL)
	c.MaxTTL = cmp.Or(c.MaxTTL, DefaultMaxTTL)
	c.MaxLifetime = cmp.Or(c.MaxLifetime, DefaultMaxLifetime)
	c.MaxPerProject = cmp.Or(c.MaxPerProject, DefaultMaxPerProject)
	c.MaxSandboxes = cmp.Or(c.MaxSandboxes, DefaultMaxSandboxes)
	c.DefaultMemory = cmp.Or(c.DefaultMemory, DefaultMemory)
	c.MaxMemory = cmp.Or(c.MaxMemory, DefaultMaxMemory)
	c.DefaultCPUs = cmp.Or(c.DefaultCPUs, DefaultCPUs)
	c.MaxCPUs = cmp.Or(c.MaxCPUs, DefaultMaxCPUs)
	c.DefaultPids = cmp.Or(c.DefaultPids, DefaultPids)
	c.MaxPids = cmp.Or(c.MaxPids, DefaultMaxPids)
	c.SandboxUser = cmp.Or(c.SandboxUser, DefaultSandboxUser)
	c.Workdir = cmp.Or(c.Workdir, DefaultWorkdir)
	c.WorkdirSize = cmp.Or(c.WorkdirSize, DefaultWorkdirSize)
	c.TmpSize = cmp.Or(c.TmpSize, DefaultTmpSize)
	c.StopTimeout = cmp.Or(c.StopTimeout, DefaultStopTimeout)
	c.CreateTimeout = cmp.Or(c.CreateTimeout, DefaultCreateTimeout)
	c.ResyncInterval = cmp.Or(c.ResyncInterval, DefaultResyncInterval)
	c.MaxOutputBytes = cmp.Or(c.MaxOutputBytes, DefaultMaxOutputBytes)
	c.MaxExecTimeout = cmp.Or(c.MaxExecTimeout, DefaultMaxExecTimeout)
	c.MaxUploadBytes = cmp.Or(c.MaxUploadBytes, DefaultMaxUploadBytes)
	c.ReapSchedule = cmp.Or(c.ReapSchedule, reaper.DefaultSchedule)
	c.ReapConcurrency = cmp.Or(c.ReapConcurrency, reaper.DefaultConcurrency)
	c.ExitedGrace = cmp.Or(c.ExitedGrace, reaper.DefaultExitedGrace)
	c.OrphanGrace = cmp.Or(c.OrphanGrace, reaper.DefaultOrphanGrace)
	c.Retention = cmp.Or(c.Retention, reaper.DefaultRetention)
	c.PoolMaxAge = cmp.Or(c.PoolMaxAge, DefaultPoolMaxAge)
	c.Version = cmp.Or(c.Version, "dev")
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, c.check()
}

// check names every setting that is out of range.
func (c Config) check() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if !path.IsAbs(c.Socket) {
		bad("socket", "must be an absolute path, got %q", c.Socket)
	}
	if c.SocketMode&^0o777 != 0 {
		bad("socket-mode", "must be permission bits (at most 0777), got %#o", c.SocketMode)
	}
	if err := validProjectLike(c.HostID, 253); err != nil {
		bad("host-id", "%v", err)
	}
	for _, img := range c.AllowImages {
		if img == "" || img == "*" {
			bad("allow-image", "%q would allow every image; name images or a repository prefix ending in *", img)
		}
	}
	if c.DefaultTTL > c.MaxTTL {
		bad("default-ttl", "%s is above --max-ttl %s", c.DefaultTTL, c.MaxTTL)
	}
	if c.DefaultTTL < time.Second {
		bad("default-ttl", "must be at least 1s, got %s", c.DefaultTTL)
	}
	if c.MaxTTL > c.MaxLifetime {
		bad("max-ttl", "%s is above --max-lifetime %s", c.MaxTTL, c.MaxLifetime)
	}
	if c.MaxPerProject < 1 || c.MaxSandboxes < 1 {
		bad("max-per-project", "and --max-sandboxes must be at least 1")
	}
	if c.DefaultMemory < minMemory || c.DefaultMemory > c.MaxMemory {
		bad("default-memory", "must be between %d and --max-memory %d, got %d", minMemory, c.MaxMemory, c.DefaultMemory)
	}
	if c.DefaultCPUs < minNanoCPUs || c.DefaultCPUs > c.MaxCPUs {
		bad("default-cpus", "must be between 0.01 and --max-cpus, got %d nano-CPUs", c.DefaultCPUs)
	}
	if c.DefaultPids < 1 || c.DefaultPids > c.MaxPids {
		bad("default-pids", "must be between 1 and --max-pids %d, got %d", c.MaxPids, c.DefaultPids)
	}
	if uid, gid, ok := strings.Cut(c.SandboxUser, ":"); !ok || !isNumber(uid) || !isNumber(gid) || strings.Trim(uid, "0") == "" {
		bad("sandbox-user", "must be a numeric non-root uid:gid, got %q", c.SandboxUser)
	}
	if !path.IsAbs(c.Workdir) || path.Clean(c.Workdir) != c.Workdir || c.Workdir == "/" || c.Workdir == "/tmp" {
		bad("workdir", "must be a clean absolute path other than / and /tmp, got %q", c.Workdir)
	}
	if c.MaxOutputBytes < 1 || c.MaxUploadBytes < 1 {
		bad("max-output-bytes", "and --max-upload-bytes must be positive")
	}
	for flag, d := range map[string]time.Duration{"stop-timeout": c.StopTimeout, "create-timeout": c.CreateTimeout,
		"resync-interval": c.ResyncInterval, "exited-grace": c.ExitedGrace, "orphan-grace": c.OrphanGrace, "retention": c.Retention} {
		if d <= 0 {
			bad(flag, "must be positive, got %s", d)
		}
	}
	for img, n := range c.Pools {
		if !c.imageAllowed(img) {
			bad("pool", "image %q is not allowed by --allow-image", img)
		}
		if n < 1 || n > 256 {
			bad("pool", "%s=%d: want between 1 and 256 sandboxes", img, n)
		}
	}
	if c.ReapConcurrency < 1 {
		bad("reap-concurrency", "must be at least 1, got %d", c.ReapConcurrency)
	}
	if c.MaxExecTimeout < time.Second {
		bad("max-exec-timeout", "must be at least 1s, got %s", c.MaxExecTimeout)
	}
	return errors.Join(errs...)
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
