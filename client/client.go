// Package client is the Go client of the sandboxd Unix-socket API: what a
// code-execution service imports to get sandboxes. It depends only on the
// standard library and package api; it never talks to Docker or PostgreSQL.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// Client calls one sandboxd daemon. Its zero value talks to the daemon at
// api.DefaultSocket. A Client is safe for concurrent use.
type Client struct {
	// Socket is the daemon's Unix socket; empty means api.DefaultSocket.
	Socket string

	once sync.Once
	hc   *http.Client
}

func (c *Client) http() *http.Client {
	c.once.Do(func() {
		sock := c.Socket
		if sock == "" {
			sock = api.DefaultSocket
		}
		var d net.Dialer
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", sock)
			},
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}}
	})
	return c.hc
}

// Error is an error answer from the daemon.
type Error struct {
	Status  int    // HTTP status
	Code    string // one of the api.Code* constants
	Message string // names the field and the limit it broke
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func hasCode(err error, code string) bool {
	var e *Error
	for err != nil {
		if x, ok := err.(*Error); ok {
			e = x
			break
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return e != nil && e.Code == code
}

// IsInvalidArgument reports whether the daemon refused the request's content.
func IsInvalidArgument(err error) bool { return hasCode(err, api.CodeInvalidArgument) }

// IsPermissionDenied reports whether the caller is not allowed to use the API.
func IsPermissionDenied(err error) bool { return hasCode(err, api.CodePermissionDenied) }

// IsNotFound reports whether the sandbox does not exist.
func IsNotFound(err error) bool { return hasCode(err, api.CodeNotFound) }

// IsConflict reports whether the sandbox is in a state that forbids the call.
func IsConflict(err error) bool { return hasCode(err, api.CodeConflict) }

// IsPayloadTooLarge reports whether a body was over its limit.
func IsPayloadTooLarge(err error) bool { return hasCode(err, api.CodePayloadTooLarge) }

// IsQuotaExceeded reports whether a create passed a quota; retry later.
func IsQuotaExceeded(err error) bool { return hasCode(err, api.CodeQuotaExceeded) }

// IsInternal reports whether the daemon failed on its side.
func IsInternal(err error) bool { return hasCode(err, api.CodeInternal) }

// IsUnavailable reports whether Docker or PostgreSQL could not be reached;
// retry later.
func IsUnavailable(err error) bool { return hasCode(err, api.CodeUnavailable) }

// do sends a request and decodes a JSON answer into out (unless nil). A
// non-nil body that is an io.Reader is sent as is with contentType;
// anything else is encoded as JSON.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, contentType string, out any) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		if br, ok := body.(io.Reader); ok {
			r = br
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				return nil, fmt.Errorf("encode request: %w", err)
			}
			r, contentType = bytes.NewReader(b), "application/json"
		}
	}
	u := "http://sandboxd" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	if out == nil {
		return resp, nil
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var er api.ErrorResponse
	if err := json.Unmarshal(b, &er); err != nil || er.Error.Code == "" {
		return &Error{Status: resp.StatusCode, Code: api.CodeInternal,
			Message: fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))}
	}
	return &Error{Status: resp.StatusCode, Code: er.Error.Code, Message: er.Error.Message}
}

// Health asks the daemon how it and its dependencies are. A degraded daemon
// answers with an error (IsUnavailable) and the Health that says why.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var h api.Health
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://sandboxd/v1/health", nil)
	if err != nil {
		return h, err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return h, fmt.Errorf("GET /v1/health: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return h, fmt.Errorf("GET /v1/health: decode answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return h, &Error{Status: resp.StatusCode, Code: api.CodeUnavailable,
			Message: fmt.Sprintf("daemon is %s: docker: %s, database: %s", h.Status, h.Docker, h.Database)}
	}
	return h, nil
}

// Create creates a sandbox and returns it running. created is false when
// the request's idempotency key named a sandbox that already existed.
func (c *Client) Create(ctx context.Context, req api.CreateRequest) (sb api.Sandbox, created bool, err error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/sandboxes", nil, req, "", &sb)
	if err != nil {
		return sb, false, err
	}
	return sb, resp.StatusCode == http.StatusCreated, nil
}

// ListOptions filter List.
type ListOptions struct {
	ProjectID string
	States    []string
	All       bool // include removed sandboxes
	Limit     int
}

// List returns sandboxes, newest first.
func (c *Client) List(ctx context.Context, opts ListOptions) ([]api.Sandbox, error) {
	q := url.Values{}
	if opts.ProjectID != "" {
		q.Set("project_id", opts.ProjectID)
	}
	if len(opts.States) > 0 {
		q.Set("state", strings.Join(opts.States, ","))
	}
	if opts.All {
		q.Set("all", "true")
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	var out api.ListResponse
	_, err := c.do(ctx, http.MethodGet, "/v1/sandboxes", q, nil, "", &out)
	return out.Sandboxes, err
}

// Get returns one sandbox.
func (c *Client) Get(ctx context.Context, id string) (api.Sandbox, error) {
	var sb api.Sandbox
	_, err := c.do(ctx, http.MethodGet, "/v1/sandboxes/"+url.PathEscape(id), nil, nil, "", &sb)
	return sb, err
}

// Extend sets the sandbox to expire ttl from now.
func (c *Client) Extend(ctx context.Context, id string, ttl time.Duration) (api.Sandbox, error) {
	var sb api.Sandbox
	_, err := c.do(ctx, http.MethodPost, "/v1/sandboxes/"+url.PathEscape(id)+"/extend", nil,
		api.ExtendRequest{TTLSeconds: int64(ttl / time.Second)}, "", &sb)
	return sb, err
}

// Exec runs a command in the sandbox and returns its output.
func (c *Client) Exec(ctx context.Context, id string, req api.ExecRequest) (api.ExecResult, error) {
	var res api.ExecResult
	_, err := c.do(ctx, http.MethodPost, "/v1/sandboxes/"+url.PathEscape(id)+"/exec", nil, req, "", &res)
	return res, err
}

// CopyTo unpacks the tar stream r under dir in the sandbox.
func (c *Client) CopyTo(ctx context.Context, id, dir string, r io.Reader) error {
	resp, err := c.do(ctx, http.MethodPut, "/v1/sandboxes/"+url.PathEscape(id)+"/files",
		url.Values{"path": {dir}}, r, "application/x-tar", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// CopyFrom returns a tar stream of path in the sandbox. The caller closes it.
// When tar failed in the sandbox after the archive began, the stream ends
// with that failure as an *Error instead of io.EOF: the archive is not
// whole. A tar reader stops at the archive's end marker, before that point,
// so read the stream to its end (io.Copy(io.Discard, rc)) after the last
// entry to learn whether the archive is complete; Close also returns the
// failure once the end was read.
func (c *Client) CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/sandboxes/"+url.PathEscape(id)+"/files",
		url.Values{"path": {path}}, nil, "", nil)
	if err != nil {
		return nil, err
	}
	return &download{resp: resp}, nil
}

// download is a download's body that reports the daemon's trailer.
type download struct {
	resp *http.Response
	done bool // the body was read to its end
}

func (d *download) Read(p []byte) (int, error) {
	n, err := d.resp.Body.Read(p)
	if err == io.EOF {
		d.done = true
		if ferr := d.failure(); ferr != nil {
			return n, ferr
		}
	}
	return n, err
}

// failure is the error the trailer reports, if any.
func (d *download) failure() error {
	t := d.resp.Trailer.Get(api.TrailerError)
	if t == "" {
		return nil
	}
	var body api.ErrorBody
	if err := json.Unmarshal([]byte(t), &body); err != nil || body.Code == "" {
		body = api.ErrorBody{Code: api.CodeInternal, Message: t}
	}
	return &Error{Status: d.resp.StatusCode, Code: body.Code, Message: "download incomplete: " + body.Message}
}

// Close closes the stream at once, and returns the trailer's failure when
// the end was read: a reader like io.ReadFull may have dropped it, as it
// drops an error that comes with the last bytes it asked for.
func (d *download) Close() error {
	err := d.resp.Body.Close()
	if d.done {
		if ferr := d.failure(); ferr != nil {
			return ferr
		}
	}
	return err
}

// Delete stops and removes the sandbox's container and returns its final
// record. Deleting a removed sandbox is not an error.
func (c *Client) Delete(ctx context.Context, id string) (api.Sandbox, error) {
	var sb api.Sandbox
	_, err := c.do(ctx, http.MethodDelete, "/v1/sandboxes/"+url.PathEscape(id), nil, nil, "", &sb)
	return sb, err
}

// Events returns the sandbox's history, oldest first.
func (c *Client) Events(ctx context.Context, id string) ([]api.Event, error) {
	var out api.EventsResponse
	_, err := c.do(ctx, http.MethodGet, "/v1/sandboxes/"+url.PathEscape(id)+"/events", nil, nil, "", &out)
	return out.Events, err
}

// Pools returns the daemon's warm pools.
func (c *Client) Pools(ctx context.Context) ([]api.Pool, error) {
	var out api.PoolsResponse
	_, err := c.do(ctx, http.MethodGet, "/v1/pools", nil, nil, "", &out)
	return out.Pools, err
}

// Reap runs a reaper pass now and returns what it did; with dryRun it only
// says what it would do.
func (c *Client) Reap(ctx context.Context, dryRun bool) (api.ReapResponse, error) {
	var out api.ReapResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/reaper/run", nil, api.ReapRequest{DryRun: dryRun}, "", &out)
	return out, err
}
