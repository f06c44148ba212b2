// Package api holds the wire types of the sandboxd Unix-socket API, shared
// by the server (package daemon) and the Go client (package client). It
// imports only the standard library. docs/api.md documents each endpoint.
package api

import "time"

// DefaultSocket is where sandboxd listens unless told otherwise.
const DefaultSocket = "/run/sandboxd/sandboxd.sock"

// MaxBodyBytes bounds every JSON request body.
const MaxBodyBytes = 1 << 20

// Limits are the resources a sandbox may use.
type Limits struct {
	MemoryBytes int64 `json:"memory_bytes"` // memory and memory+swap, in bytes
	NanoCPUs    int64 `json:"nano_cpus"`    // CPU quota in units of 1e-9 CPUs
	Pids        int64 `json:"pids"`         // most processes at once
}

// Sandbox is a sandbox container and its record.
type Sandbox struct {
	ID                 string            `json:"id"`
	ProjectID          string            `json:"project_id"`
	HostID             string            `json:"host_id"`
	ContainerID        string            `json:"container_id"`
	ContainerName      string            `json:"container_name"`
	Image              string            `json:"image"`
	State              string            `json:"state"`
	ExitCode           *int              `json:"exit_code"`
	OOMKilled          bool              `json:"oom_killed"`
	Limits             Limits            `json:"limits"`
	Labels             map[string]string `json:"labels"`
	CreatedAt          time.Time         `json:"created_at"`
	StartedAt          *time.Time        `json:"started_at"`
	FinishedAt         *time.Time        `json:"finished_at"`
	ExpiresAt          time.Time         `json:"expires_at"`
	IdleTimeoutSeconds int64             `json:"idle_timeout_seconds"`
	LastActivityAt     time.Time         `json:"last_activity_at"`
	RemovedAt          *time.Time        `json:"removed_at"`
	RemovalReason      *string           `json:"removal_reason"`
	Error              string            `json:"error,omitempty"`
	AcquiredFrom       string            `json:"acquired_from"` // "cold": made for its request; "pool": claimed ready
}

// LimitsRequest asks for limits; an absent field takes the server's default.
type LimitsRequest struct {
	MemoryBytes *int64 `json:"memory_bytes,omitempty"`
	NanoCPUs    *int64 `json:"nano_cpus,omitempty"`
	Pids        *int64 `json:"pids,omitempty"`
}

// CreateRequest is the body of POST /v1/sandboxes.
type CreateRequest struct {
	ProjectID          string            `json:"project_id"`
	Image              string            `json:"image"`
	Cmd                []string          `json:"cmd,omitempty"`
	Env                map[string]string `json:"env,omitempty"`
	Workdir            string            `json:"workdir,omitempty"`
	TTLSeconds         *int64            `json:"ttl_seconds,omitempty"`
	IdleTimeoutSeconds int64             `json:"idle_timeout_seconds,omitempty"`
	Limits             *LimitsRequest    `json:"limits,omitempty"`
	Labels             map[string]string `json:"labels,omitempty"`
	IdempotencyKey     string            `json:"idempotency_key,omitempty"`
}

// ListResponse is the body of GET /v1/sandboxes.
type ListResponse struct {
	Sandboxes []Sandbox `json:"sandboxes"`
}

// ExtendRequest is the body of POST /v1/sandboxes/{id}/extend.
type ExtendRequest struct {
	TTLSeconds int64 `json:"ttl_seconds"`
}

// ExecRequest is the body of POST /v1/sandboxes/{id}/exec.
type ExecRequest struct {
	Cmd            []string          `json:"cmd"`
	Stdin          string            `json:"stdin,omitempty"`
	Env            map[string]string `json:"env,omitempty"`
	Workdir        string            `json:"workdir,omitempty"`
	TimeoutSeconds *int64            `json:"timeout_seconds,omitempty"`
}

// ExecResult is the answer to an exec.
type ExecResult struct {
	ExitCode        int    `json:"exit_code"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	TimedOut        bool   `json:"timed_out"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	DurationMS      int64  `json:"duration_ms"`
}

// Event is one entry of a sandbox's history.
type Event struct {
	Time        time.Time         `json:"time"`
	Action      string            `json:"action"`
	Source      string            `json:"source"`
	ContainerID string            `json:"container_id,omitempty"`
	Attributes  map[string]string `json:"attributes"`
}

// EventsResponse is the body of GET /v1/sandboxes/{id}/events.
type EventsResponse struct {
	Events []Event `json:"events"`
}

// ReapRequest is the body of POST /v1/reaper/run.
type ReapRequest struct {
	DryRun bool `json:"dry_run"`
}

// ReapAction is one thing a reaper pass did, or in a dry run would do.
type ReapAction struct {
	SandboxID   string `json:"sandbox_id"`
	ContainerID string `json:"container_id"`
	ProjectID   string `json:"project_id"`
	Reason      string `json:"reason"` // expired, idle, exited, orphaned, vanished, stale_creating, removing
	Done        bool   `json:"done"`
	Error       string `json:"error,omitempty"`
}

// ReapResponse is the answer to POST /v1/reaper/run.
type ReapResponse struct {
	DryRun  bool         `json:"dry_run"`
	Actions []ReapAction `json:"actions"`
}

// Pool is one warm pool, in the answer to GET /v1/pools.
type Pool struct {
	Image  string `json:"image"`
	Target int    `json:"target"` // sandboxes kept ready (--pool IMAGE=N)
	Ready  int    `json:"ready"`  // pooled now
	Claims int64  `json:"claims"` // creates it served since the daemon started
	Misses int64  `json:"misses"` // creates it could have served but found empty
}

// PoolsResponse is the body of GET /v1/pools.
type PoolsResponse struct {
	Pools []Pool `json:"pools"`
}

// Health is the body of GET /v1/health. Each dependency field is "ok" or
// the error that dependency gave.
type Health struct {
	Status   string `json:"status"` // "ok" or "degraded"
	Version  string `json:"version"`
	Docker   string `json:"docker"`
	Database string `json:"database"`
	Events   string `json:"events"` // the Docker event stream: "ok", or since when and why it is down
}

// The error codes of ErrorBody.Code, each with one HTTP status.
const (
	CodeInvalidArgument  = "invalid_argument"  // 400
	CodePermissionDenied = "permission_denied" // 403
	CodeNotFound         = "not_found"         // 404
	CodeConflict         = "conflict"          // 409
	CodePayloadTooLarge  = "payload_too_large" // 413
	CodeQuotaExceeded    = "quota_exceeded"    // 429
	CodeInternal         = "internal"          // 500
	CodeUnavailable      = "unavailable"       // 503
)

// TrailerError is the HTTP trailer that ends a download whose archive had
// begun when tar failed in the sandbox: an ErrorBody as JSON. A download
// without it is complete.
const TrailerError = "Sandboxd-Error"

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody says what went wrong: a code from the list above and a message
// that names the field and the limit it broke.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
