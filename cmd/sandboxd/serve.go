package main

import (
	"context"
	"flag"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/daemon"
	"github.com/sandboxd/sandboxd/reaper"
	"github.com/sandboxd/sandboxd/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func serve(ctx context.Context, args []string) error {
	cfg, logLevel, logFormat, err := parseServeFlags(args, os.LookupEnv)
	if err != nil {
		return err
	}
	var h slog.Handler
	opts := &slog.HandlerOptions{Level: logLevel}
	if logFormat == "text" {
		h = slog.NewTextHandler(os.Stderr, opts)
	} else {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	cfg.Logger = slog.New(h)
	cfg.Version = version
	return daemon.Run(ctx, cfg, nil)
}

// serveFlags defines the serve flags on c. Each is also read from the
// environment (see parseServeFlags) and listed in
// systemd/sandboxd.env.example.
func serveFlags(c *daemon.Config) (fs *flag.FlagSet, mode, logFormat, logLevel *string) {
	fs = flag.NewFlagSet("sandboxd serve", flag.ContinueOnError)
	fs.StringVar(&c.Socket, "socket", api.DefaultSocket, "Unix socket to serve the API on")
	mode = fs.String("socket-mode", "0660", "permission bits of the socket file (octal)")
	fs.StringVar(&c.SocketGroup, "socket-group", "", "group (name or gid) that owns the socket; callers in it may connect")
	fs.Func("allow-uid", "user (name or uid) allowed to call the API besides root and the daemon's own (repeatable, or a comma list)", idList(&c.AllowUIDs, lookupUID))
	fs.Func("allow-gid", "callers in this group (name or gid; primary or supplementary) are allowed (repeatable, or a comma list)", idList(&c.AllowGIDs, lookupGID))
	fs.StringVar(&c.DatabaseURL, "database-url", store.DefaultURL, "PostgreSQL connection string")
	fs.StringVar(&c.DockerHost, "docker-host", "", "Docker engine address (default: DOCKER_HOST or the local socket)")
	fs.StringVar(&c.HostID, "host-id", "", "name of this host in the table (default: the hostname)")
	fs.Func("allow-image", "image sandboxes may use: a reference, or a prefix ending in * (repeatable, or a comma list)", func(s string) error {
		for _, img := range strings.Split(s, ",") {
			if img = strings.TrimSpace(img); img != "" {
				c.AllowImages = append(c.AllowImages, img)
			}
		}
		return nil
	})
	fs.DurationVar(&c.DefaultTTL, "default-ttl", daemon.DefaultTTL, "lifetime of a sandbox when the request gives none")
	fs.DurationVar(&c.MaxTTL, "max-ttl", daemon.DefaultMaxTTL, "longest ttl a request may ask for")
	fs.DurationVar(&c.MaxLifetime, "max-lifetime", daemon.DefaultMaxLifetime, "no extend may push expiry past created_at + this")
	fs.IntVar(&c.MaxPerProject, "max-per-project", daemon.DefaultMaxPerProject, "live sandboxes per project on this host")
	fs.IntVar(&c.MaxSandboxes, "max-sandboxes", daemon.DefaultMaxSandboxes, "live sandboxes on this host")
	sizeVar(fs, &c.DefaultMemory, "default-memory", daemon.DefaultMemory, "memory limit when the request gives none")
	sizeVar(fs, &c.MaxMemory, "max-memory", daemon.DefaultMaxMemory, "largest memory limit a request may ask for")
	cpuVar(fs, &c.DefaultCPUs, "default-cpus", daemon.DefaultCPUs, "CPUs when the request gives none")
	cpuVar(fs, &c.MaxCPUs, "max-cpus", daemon.DefaultMaxCPUs, "most CPUs a request may ask for")
	fs.Int64Var(&c.DefaultPids, "default-pids", daemon.DefaultPids, "process limit when the request gives none")
	fs.Int64Var(&c.MaxPids, "max-pids", daemon.DefaultMaxPids, "largest process limit a request may ask for")
	fs.StringVar(&c.SandboxUser, "sandbox-user", daemon.DefaultSandboxUser, "numeric uid:gid that sandbox processes run as")
	fs.StringVar(&c.Workdir, "workdir", daemon.DefaultWorkdir, "writable working directory of every sandbox (a tmpfs)")
	sizeVar(fs, &c.WorkdirSize, "workdir-size", daemon.DefaultWorkdirSize, "size of the workdir tmpfs")
	fs.StringVar(&c.Runtime, "runtime", "", "OCI runtime for sandboxes, e.g. runsc (default: the engine's)")
	fs.DurationVar(&c.StopTimeout, "stop-timeout", daemon.DefaultStopTimeout, "grace between SIGTERM and SIGKILL when a sandbox is removed")
	fs.DurationVar(&c.CreateTimeout, "create-timeout", daemon.DefaultCreateTimeout, "a create still unfinished after this has failed")
	fs.DurationVar(&c.ResyncInterval, "resync-interval", daemon.DefaultResyncInterval, "reconcile the table with the engine this often, besides events")
	fs.StringVar(&c.ReapSchedule, "reap-schedule", reaper.DefaultSchedule, "when the reaper runs: a cron spec or @every 10s")
	fs.BoolVar(&c.ReapDryRun, "reap-dry-run", false, "scheduled reaper passes only plan and log, and change nothing")
	fs.IntVar(&c.ReapConcurrency, "reap-concurrency", reaper.DefaultConcurrency, "containers the reaper removes at once")
	fs.DurationVar(&c.ExitedGrace, "exited-grace", reaper.DefaultExitedGrace, "an exited sandbox is removed this long after its process ended")
	fs.DurationVar(&c.OrphanGrace, "orphan-grace", reaper.DefaultOrphanGrace, "a labelled container without a live row is removed once this old")
	fs.DurationVar(&c.Retention, "retention", reaper.DefaultRetention, "removed and failed rows, with their history, are deleted after this")
	sizeVar(fs, &c.MaxOutputBytes, "max-output-bytes", daemon.DefaultMaxOutputBytes, "exec output kept per stream")
	fs.DurationVar(&c.MaxExecTimeout, "max-exec-timeout", daemon.DefaultMaxExecTimeout, "longest timeout an exec may ask for")
	sizeVar(fs, &c.MaxUploadBytes, "max-upload-bytes", daemon.DefaultMaxUploadBytes, "largest file upload (tar) accepted")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "TCP address to serve /metrics on, e.g. 127.0.0.1:9464 (default: only on the socket)")
	fs.Func("pool", "keep N started sandboxes of IMAGE ready to claim, as IMAGE=N (repeatable, or a comma list)", func(s string) error {
		for _, kv := range strings.Split(s, ",") {
			img, n, ok := strings.Cut(strings.TrimSpace(kv), "=")
			count, err := strconv.Atoi(n)
			if !ok || img == "" || err != nil || count < 1 {
				return fmt.Errorf("want IMAGE=N with N at least 1, got %q", kv)
			}
			if c.Pools == nil {
				c.Pools = map[string]int{}
			}
			c.Pools[img] = count
		}
		return nil
	})
	fs.DurationVar(&c.PoolMaxAge, "pool-max-age", daemon.DefaultPoolMaxAge, "pool sandboxes older than this are replaced")
	logFormat = fs.String("log-format", "json", "log format: json or text")
	logLevel = fs.String("log-level", "info", "log level: debug, info, warn or error")

	return fs, mode, logFormat, logLevel
}

// parseServeFlags reads the serve flags. Every flag can also come from the
// environment as SANDBOXD_ plus its name in upper snake case; the command
// line wins. A bad value is an error that names the flag.
func parseServeFlags(args []string, lookupEnv func(string) (string, bool)) (daemon.Config, slog.Level, string, error) {
	var c daemon.Config
	fs, mode, logFormat, logLevel := serveFlags(&c)
	if err := fs.Parse(args); err != nil {
		return c, 0, "", err
	}
	if fs.NArg() > 0 {
		return c, 0, "", fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env := "SANDBOXD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookupEnv(env); ok && !set[f.Name] && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("--%s (from %s): %w", f.Name, env, err)
			}
		}
	})
	if envErr != nil {
		return c, 0, "", envErr
	}
	// Zero would silently mean "the default" in daemon.Config: refuse it.
	var bad error
	fs.VisitAll(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok && bad == nil {
			switch v := g.Get().(type) {
			case int:
				if v <= 0 {
					bad = fmt.Errorf("--%s: must be positive, got %d", f.Name, v)
				}
			case int64:
				if v <= 0 {
					bad = fmt.Errorf("--%s: must be positive, got %d", f.Name, v)
				}
			case time.Duration:
				if v <= 0 {
					bad = fmt.Errorf("--%s: must be positive, got %s", f.Name, v)
				}
			}
		}
	})
	if bad != nil {
		return c, 0, "", bad
	}
	m, err := strconv.ParseUint(*mode, 8, 32)
	if err != nil || m == 0 || m > 0o777 {
		return c, 0, "", fmt.Errorf("--socket-mode: want octal permission bits such as 0660, got %q", *mode)
	}
	c.SocketMode = iofs.FileMode(m)
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return c, 0, "", fmt.Errorf("--log-level: want debug, info, warn or error, got %q", *logLevel)
	}
	if *logFormat != "json" && *logFormat != "text" {
		return c, 0, "", fmt.Errorf("--log-format: want json or text, got %q", *logFormat)
	}
	return c, level, *logFormat, nil
}

// idList reads uids or gids, by number or by name (resolved with lookup).
func idList(dst *[]uint32, lookup func(string) (string, error)) func(string) error {
	return func(s string) error {
		for _, f := range strings.Split(s, ",") {
			f = strings.TrimSpace(f)
			if n, err := strconv.ParseUint(f, 10, 32); err == nil {
				*dst = append(*dst, uint32(n))
				continue
			}
			id, err := lookup(f)
			if err != nil {
				return fmt.Errorf("want a number or a known name, got %q", f)
			}
			n, err := strconv.ParseUint(id, 10, 32)
			if err != nil {
				return fmt.Errorf("%q resolves to %q, not a number", f, id)
			}
			*dst = append(*dst, uint32(n))
		}
		return nil
	}
}

func lookupUID(name string) (string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", err
	}
	return u.Uid, nil
}

func lookupGID(name string) (string, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return "", err
	}
	return g.Gid, nil
}

// sizeValue is a byte count flag that accepts units (512MiB, 4GiB).
type sizeValue struct{ dst *int64 }

func (v sizeValue) String() string {
	if v.dst == nil {
		return ""
	}
	n := *v.dst
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (v sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err == nil {
		*v.dst = n
	}
	return err
}

func sizeVar(fs *flag.FlagSet, dst *int64, name string, def int64, usage string) {
	*dst = def
	fs.Var(sizeValue{dst}, name, usage+" (bytes, or with a unit: 512MiB, 4GiB)")
}

// cpuValue is a number of CPUs, kept in nano-CPUs.
type cpuValue struct{ dst *int64 }

func (v cpuValue) String() string {
	if v.dst == nil {
		return ""
	}
	return strconv.FormatFloat(float64(*v.dst)/1e9, 'f', -1, 64)
}

func (v cpuValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f > 1024 {
		return fmt.Errorf("want a positive number of CPUs, got %q", s)
	}
	*v.dst = int64(f * 1e9)
	return nil
}

func cpuVar(fs *flag.FlagSet, dst *int64, name string, def int64, usage string) {
	*dst = def
	fs.Var(cpuValue{dst}, name, usage+" (a number, may be fractional: 0.5)")
}

var units = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// parseSize reads a byte count: a number, optionally with a unit.
func parseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("want a positive size such as 512MiB, got %q", s)
	}
	return n * mult, nil
}
