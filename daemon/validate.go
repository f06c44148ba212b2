package daemon

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sandboxd/sandboxd/api"
)

// Bounds that no configuration changes.
const (
	minMemory      = 6 << 20 // the engine refuses less
	minNanoCPUs    = 1e7     // 0.01 CPU
	maxLabels      = 32
	maxLabelValue  = 256
	maxIdemKey     = 128
	maxArgs        = 1024
	maxArgBytes    = 64 << 10
	maxEnvVars     = 256
	maxEnvValue    = 32 << 10
	maxPathBytes   = 4096
	maxIdleTimeout = 7 * 24 * time.Hour
)

var (
	projectRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)
	labelKeyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	envNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// invalid is a 400 whose message names the field and what it broke.
func invalid(field, format string, args ...any) error {
	return &apiError{status: 400, code: api.CodeInvalidArgument,
		msg: field + ": " + fmt.Sprintf(format, args...)}
}

// validProjectLike checks the project id rule (docker_containers.project_id
// enforces the same with a CHECK): 1 to max of A-Za-z0-9._- not starting
// with . or -.
func validProjectLike(s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("must not be empty")
	case len(s) > max:
		return fmt.Errorf("must be at most %d characters, got %d", max, len(s))
	case !projectRE.MatchString(s):
		return fmt.Errorf("must be letters, digits, '.', '_' or '-', not starting with '.' or '-', got %q", s)
	}
	return nil
}

func validID(id string) error {
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return invalid("id", "must be a sandbox id (a UUID), got %q", truncate(id, 64))
	}
	return nil
}

// createSpec is a create request checked and completed with the server's
// defaults: everything the container is made from.
type createSpec struct {
	ProjectID      string
	Image          string
	Cmd            []string
	Env            []string
	Workdir        string
	TTL            time.Duration
	IdleTimeout    time.Duration
	MemoryBytes    int64
	NanoCPUs       int64
	Pids           int64
	Labels         map[string]string
	IdempotencyKey string
}

// checkCreate validates a create request against the configuration. It
// does not look at the engine (image presence) or the table (quotas).
func (c *Config) checkCreate(req api.CreateRequest) (createSpec, error) {
	sp := createSpec{ProjectID: req.ProjectID, Image: req.Image, Cmd: req.Cmd,
		Labels: req.Labels, IdempotencyKey: req.IdempotencyKey}
	if err := validProjectLike(req.ProjectID, 64); err != nil {
		return sp, invalid("project_id", "%v", err)
	}
	if req.Image == "" {
		return sp, invalid("image", "is required")
	}
	if !c.imageAllowed(req.Image) {
		return sp, invalid("image", "%q is not allowed on this host (allowed: %s)", truncate(req.Image, 256), strings.Join(c.AllowImages, ", "))
	}
	if req.Cmd != nil {
		if err := checkArgs("cmd", req.Cmd); err != nil {
			return sp, err
		}
	}
	env, err := checkEnv("env", req.Env)
	if err != nil {
		return sp, err
	}
	sp.Env = env
	sp.Workdir = c.Workdir
	if req.Workdir != "" {
		if err := checkAbsPath("workdir", req.Workdir); err != nil {
			return sp, err
		}
		// Only the roots of the two writable mounts: a directory below them
		// would be made by the engine, owned by root, and not writable by
		// the sandbox user.
		if req.Workdir != c.Workdir && req.Workdir != "/tmp" {
			return sp, invalid("workdir", "must be %s or /tmp (the writable mounts), got %q", c.Workdir, truncate(req.Workdir, 256))
		}
		sp.Workdir = req.Workdir
	}
	sp.TTL = c.DefaultTTL
	if req.TTLSeconds != nil {
		if sp.TTL, err = c.checkTTL("ttl_seconds", *req.TTLSeconds); err != nil {
			return sp, err
		}
	}
	if req.IdleTimeoutSeconds < 0 || req.IdleTimeoutSeconds > int64(maxIdleTimeout/time.Second) {
		return sp, invalid("idle_timeout_seconds", "must be between 0 (none) and %d, got %d", int64(maxIdleTimeout/time.Second), req.IdleTimeoutSeconds)
	}
	sp.IdleTimeout = time.Duration(req.IdleTimeoutSeconds) * time.Second
	sp.MemoryBytes, sp.NanoCPUs, sp.Pids = c.DefaultMemory, c.DefaultCPUs, c.DefaultPids
	if l := req.Limits; l != nil {
		if sp.MemoryBytes, err = bounded("limits.memory_bytes", l.MemoryBytes, c.DefaultMemory, minMemory, c.MaxMemory); err != nil {
			return sp, err
		}
		if sp.NanoCPUs, err = bounded("limits.nano_cpus", l.NanoCPUs, c.DefaultCPUs, minNanoCPUs, c.MaxCPUs); err != nil {
			return sp, err
		}
		if sp.Pids, err = bounded("limits.pids", l.Pids, c.DefaultPids, 1, c.MaxPids); err != nil {
			return sp, err
		}
	}
	if len(req.Labels) > maxLabels {
		return sp, invalid("labels", "at most %d labels, got %d", maxLabels, len(req.Labels))
	}
	for k, v := range req.Labels {
		if !labelKeyRE.MatchString(k) {
			return sp, invalid("labels", "key %q must match [a-z0-9][a-z0-9._-]{0,62}", truncate(k, 80))
		}
		if len(v) > maxLabelValue {
			return sp, invalid("labels."+k, "value must be at most %d characters, got %d", maxLabelValue, len(v))
		}
	}
	if len(req.IdempotencyKey) > maxIdemKey {
		return sp, invalid("idempotency_key", "must be at most %d characters, got %d", maxIdemKey, len(req.IdempotencyKey))
	}
	return sp, nil
}

// checkTTL checks a TTL in seconds against 1 .. --max-ttl.
func (c *Config) checkTTL(field string, secs int64) (time.Duration, error) {
	max := int64(c.MaxTTL / time.Second)
	if secs < 1 || secs > max {
		return 0, invalid(field, "must be between 1 and %d (--max-ttl %s), got %d", max, c.MaxTTL, secs)
	}
	return time.Duration(secs) * time.Second, nil
}

func (c *Config) imageAllowed(ref string) bool {
	for _, a := range c.AllowImages {
		if p, ok := strings.CutSuffix(a, "*"); ok && strings.HasPrefix(ref, p) || a == ref {
			return true
		}
	}
	return false
}

// bounded returns the default when v is absent, and v when it is within
// [min, max].
func bounded(field string, v *int64, def, min, max int64) (int64, error) {
	if v == nil {
		return def, nil
	}
	if *v < min || *v > max {
		return 0, invalid(field, "must be between %d and %d, got %d", min, max, *v)
	}
	return *v, nil
}

func checkArgs(field string, args []string) error {
	if len(args) == 0 || args[0] == "" {
		return invalid(field, "must name a program to run")
	}
	if len(args) > maxArgs {
		return invalid(field, "at most %d arguments, got %d", maxArgs, len(args))
	}
	for i, a := range args {
		if len(a) > maxArgBytes {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "must be at most %d bytes, got %d", maxArgBytes, len(a))
		}
		if strings.IndexByte(a, 0) >= 0 {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "must not contain NUL bytes")
		}
	}
	return nil
}

// checkEnv validates environment variables and returns them as NAME=value.
func checkEnv(field string, env map[string]string) ([]string, error) {
	if len(env) > maxEnvVars {
		return nil, invalid(field, "at most %d variables, got %d", maxEnvVars, len(env))
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		if !envNameRE.MatchString(k) || len(k) > 256 {
			return nil, invalid(field, "name %q must match [A-Za-z_][A-Za-z0-9_]*", truncate(k, 80))
		}
		if len(v) > maxEnvValue || strings.IndexByte(v, 0) >= 0 {
			return nil, invalid(field+"."+k, "value must be at most %d bytes without NUL bytes", maxEnvValue)
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}

// checkAbsPath checks a path inside a sandbox: absolute, clean, no "..".
func checkAbsPath(field, p string) error {
	switch {
	case len(p) > maxPathBytes:
		return invalid(field, "must be at most %d bytes", maxPathBytes)
	case !path.IsAbs(p):
		return invalid(field, "must be an absolute path, got %q", truncate(p, 256))
	case strings.IndexByte(p, 0) >= 0:
		return invalid(field, "must not contain NUL bytes")
	case path.Clean(p) != p || strings.Contains(p, ".."):
		return invalid(field, "must be a clean path without '..', got %q", truncate(p, 256))
	}
	return nil
}

// checkExec validates an exec request; it returns the environment as
// NAME=value and the timeout.
func (c *Config) checkExec(req api.ExecRequest) ([]string, time.Duration, error) {
	if err := checkArgs("cmd", req.Cmd); err != nil {
		return nil, 0, err
	}
	env, err := checkEnv("env", req.Env)
	if err != nil {
		return nil, 0, err
	}
	if req.Workdir != "" {
		if err := checkAbsPath("workdir", req.Workdir); err != nil {
			return nil, 0, err
		}
	}
	timeout := DefaultExecTimeout
	if timeout > c.MaxExecTimeout {
		timeout = c.MaxExecTimeout
	}
	if req.TimeoutSeconds != nil {
		max := int64(c.MaxExecTimeout / time.Second)
		if *req.TimeoutSeconds < 1 || *req.TimeoutSeconds > max {
			return nil, 0, invalid("timeout_seconds", "must be between 1 and %d (--max-exec-timeout %s), got %d", max, c.MaxExecTimeout, *req.TimeoutSeconds)
		}
		timeout = time.Duration(*req.TimeoutSeconds) * time.Second
	}
	return env, timeout, nil
}

// checkFilesPath validates the path of a file copy: it must lie in the
// workdir or /tmp, the only writable places of a sandbox.
func (c *Config) checkFilesPath(p string) error {
	if err := checkAbsPath("path", p); err != nil {
		return err
	}
	if !c.writable(p) {
		return invalid("path", "must lie inside %s or /tmp, got %q", c.Workdir, truncate(p, 256))
	}
	return nil
}

func (c *Config) writable(p string) bool {
	for _, root := range []string{c.Workdir, "/tmp"} {
		if p == root || strings.HasPrefix(p, root+"/") {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
