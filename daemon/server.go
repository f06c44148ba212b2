package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/reaper"
	"github.com/sandboxd/sandboxd/store"
)

// server answers the Unix-socket API. Every route but the health check is
// behind authorize.
type server struct {
	cfg Config
	m   *manager
	log *slog.Logger
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", s.health)
	mux.HandleFunc("POST /v1/sandboxes", s.create)
	mux.HandleFunc("GET /v1/sandboxes", s.list)
	mux.HandleFunc("GET /v1/sandboxes/{id}", s.withID(s.get))
	mux.HandleFunc("DELETE /v1/sandboxes/{id}", s.withID(s.release))
	mux.HandleFunc("POST /v1/sandboxes/{id}/extend", s.withID(s.extend))
	mux.HandleFunc("POST /v1/sandboxes/{id}/exec", s.withID(s.exec))
	mux.HandleFunc("PUT /v1/sandboxes/{id}/files", s.withID(s.putFiles))
	mux.HandleFunc("GET /v1/sandboxes/{id}/files", s.withID(s.getFiles))
	mux.HandleFunc("GET /v1/sandboxes/{id}/events", s.withID(s.events))
	mux.HandleFunc("POST /v1/reaper/run", s.reap)
	mux.HandleFunc("GET /v1/pools", s.pools)
	mux.Handle("GET /metrics", s.m.metrics.handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.log, &apiError{http.StatusNotFound, api.CodeNotFound,
			fmt.Sprintf("no endpoint %s %s; see docs/api.md", r.Method, r.URL.Path)})
	})
	return s.logRequests(s.authorize(mux))
}

// logRequests logs each request at debug level with its outcome.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		p := peerFrom(r.Context())
		took := time.Since(start)
		route := r.Pattern // the mux's pattern: a closed set, unlike the path
		if route == "" || route == "/" {
			route = "unknown"
		}
		s.m.metrics.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
		s.m.metrics.requestLatency.WithLabelValues(route).Observe(took.Seconds())
		s.log.DebugContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "duration_ms", took.Milliseconds(), "uid", p.UID, "pid", p.PID)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withID validates the {id} path segment before the handler runs.
func (s *server) withID(h func(http.ResponseWriter, *http.Request, string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		err := validID(id)
		if err == nil {
			err = h(w, r, id)
		}
		if err != nil {
			writeError(w, r, s.log, err)
		}
	}
}

// decode reads a JSON body strictly: one object, no unknown fields, at most
// api.MaxBodyBytes.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, api.MaxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return invalid("body", "must be a JSON object")
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("body", "malformed JSON: %v", err)
	case errors.As(err, &te):
		return invalid(cmpOr(te.Field, "body"), "must be %s, got JSON %s", jsonKind(te.Type.Kind().String()), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return invalid(strings.Trim(field, `"`), "unknown field; this request has no such setting")
	default:
		return invalid("body", "%v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if errors.As(err, &mbe) {
			return err
		}
		return invalid("body", "must hold exactly one JSON object")
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "int32", "uint32":
		return "an integer"
	case "slice":
		return "a list"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "a " + k
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	h := api.Health{Status: "ok", Version: s.cfg.Version, Docker: "ok", Database: "ok", Events: "ok"}
	if _, err := s.m.docker.Ping(ctx); err != nil {
		h.Status, h.Docker = "degraded", err.Error()
	}
	if err := s.m.st.Ping(ctx); err != nil {
		h.Status, h.Database = "degraded", err.Error()
	}
	up, detail := s.m.events.Status()
	if h.Events = detail; !up {
		h.Status = "degraded"
	}
	status := http.StatusOK
	if h.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}

func (s *server) create(w http.ResponseWriter, r *http.Request) {
	var req api.CreateRequest
	err := decode(w, r, &req)
	if err == nil {
		var sb store.Sandbox
		var created bool
		sb, created, err = s.m.create(r.Context(), req, peerFrom(r.Context()))
		if err == nil {
			status := http.StatusOK
			if created {
				status = http.StatusCreated
			}
			writeJSON(w, status, toAPI(sb))
			return
		}
	}
	writeError(w, r, s.log, err)
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	f, err := listFilter(r)
	if err == nil {
		f.HostID = s.cfg.HostID
		var sbs []store.Sandbox
		if sbs, err = s.m.st.List(r.Context(), f); err == nil {
			out := api.ListResponse{Sandboxes: make([]api.Sandbox, len(sbs))}
			for i, sb := range sbs {
				out.Sandboxes[i] = toAPI(sb)
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
	}
	writeError(w, r, s.log, err)
}

// listFilter reads the query of GET /v1/sandboxes; unknown parameters are
// refused like unknown fields.
func listFilter(r *http.Request) (store.Filter, error) {
	f := store.Filter{Limit: 100}
	for k, v := range r.URL.Query() {
		if len(v) != 1 {
			return f, invalid(k, "give it once")
		}
		switch val := v[0]; k {
		case "project_id":
			if err := validProjectLike(val, 64); err != nil {
				return f, invalid("project_id", "%v", err)
			}
			f.ProjectID = val
		case "state":
			for _, st := range strings.Split(val, ",") {
				if !store.State(st).Valid() {
					return f, invalid("state", "%q is not a state (one of %v)", truncate(st, 32), store.States)
				}
				f.States = append(f.States, store.State(st))
			}
		case "all":
			all, err := strconv.ParseBool(val)
			if err != nil {
				return f, invalid("all", "must be true or false, got %q", truncate(val, 32))
			}
			f.All = all
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 1000 {
				return f, invalid("limit", "must be between 1 and 1000, got %q", truncate(val, 32))
			}
			f.Limit = n
		default:
			return f, invalid(truncate(k, 64), "unknown query parameter; want project_id, state, all or limit")
		}
	}
	// Asking for removed or failed rows by state implies all. Pooled
	// sandboxes are no one's until claimed: listed only when asked for.
	f.ExcludePooled = !slices.Contains(f.States, store.Pooled)
	for _, st := range f.States {
		if !st.Live() {
			f.All = true
		}
	}
	return f, nil
}

func (s *server) get(w http.ResponseWriter, r *http.Request, id string) error {
	sb, err := s.m.get(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toAPI(sb))
	return nil
}

func (s *server) release(w http.ResponseWriter, r *http.Request, id string) error {
	sb, err := s.m.release(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toAPI(sb))
	return nil
}

func (s *server) extend(w http.ResponseWriter, r *http.Request, id string) error {
	var req api.ExtendRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	sb, err := s.m.extend(r.Context(), id, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toAPI(sb))
	return nil
}

func (s *server) exec(w http.ResponseWriter, r *http.Request, id string) error {
	var req api.ExecRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	res, err := s.m.exec(r.Context(), id, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *server) putFiles(w http.ResponseWriter, r *http.Request, id string) error {
	if err := onlyQuery(r, "path"); err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/x-tar" {
		return invalid("Content-Type", "must be application/x-tar, got %q", truncate(ct, 64))
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxUploadBytes)
	if err := s.m.putFiles(r.Context(), id, r.URL.Query().Get("path"), body); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) getFiles(w http.ResponseWriter, r *http.Request, id string) error {
	if err := onlyQuery(r, "path"); err != nil {
		return err
	}
	return s.m.getFiles(r.Context(), id, r.URL.Query().Get("path"), w)
}

// onlyQuery refuses query parameters other than the named one.
func onlyQuery(r *http.Request, name string) error {
	for k := range r.URL.Query() {
		if k != name {
			return invalid(truncate(k, 64), "unknown query parameter; want %s", name)
		}
	}
	return nil
}

func (s *server) events(w http.ResponseWriter, r *http.Request, id string) error {
	if _, err := s.m.get(r.Context(), id); err != nil {
		return err
	}
	evs, err := s.m.st.ListEvents(r.Context(), id)
	if err != nil {
		return err
	}
	out := api.EventsResponse{Events: make([]api.Event, len(evs))}
	for i, e := range evs {
		out.Events[i] = api.Event{Time: e.OccurredAt, Action: e.Action, Source: string(e.Source),
			ContainerID: e.ContainerID, Attributes: e.Attributes}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) reap(w http.ResponseWriter, r *http.Request) {
	var req api.ReapRequest
	err := decode(w, r, &req)
	if err == nil {
		var actions []reaper.Action
		actions, err = s.m.reaper.Run(r.Context(), req.DryRun)
		if err == nil {
			out := api.ReapResponse{DryRun: req.DryRun, Actions: make([]api.ReapAction, len(actions))}
			for i, a := range actions {
				out.Actions[i] = api.ReapAction{SandboxID: a.SandboxID, ContainerID: a.ContainerID, ProjectID: a.ProjectID,
					Reason: string(a.Reason), Done: a.Done, Error: a.Error}
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		if errors.Is(err, reaper.ErrBusy) {
			err = conflict(err.Error())
		}
	}
	writeError(w, r, s.log, err)
}

func (s *server) pools(w http.ResponseWriter, r *http.Request) {
	counts, err := s.m.st.CountPooled(r.Context(), s.cfg.HostID)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	out := api.PoolsResponse{Pools: []api.Pool{}}
	for image, target := range s.cfg.Pools {
		claims, misses := s.m.metrics.poolCounts(image)
		out.Pools = append(out.Pools, api.Pool{Image: image, Target: target, Ready: counts[image], Claims: claims, Misses: misses})
	}
	slices.SortFunc(out.Pools, func(a, b api.Pool) int { return strings.Compare(a.Image, b.Image) })
	writeJSON(w, http.StatusOK, out)
}

// toAPI turns a row into the wire form of a sandbox.
func toAPI(sb store.Sandbox) api.Sandbox {
	out := api.Sandbox{
		ID: sb.ID, ProjectID: sb.ProjectID, HostID: sb.HostID, ContainerID: sb.ContainerID,
		ContainerName: sb.ContainerName, Image: sb.Image, State: string(sb.State),
		ExitCode: sb.ExitCode, OOMKilled: sb.OOMKilled,
		Limits:    api.Limits{MemoryBytes: sb.MemoryBytes, NanoCPUs: sb.NanoCPUs, Pids: sb.PidsLimit},
		Labels:    sb.Labels,
		CreatedAt: sb.CreatedAt, StartedAt: sb.StartedAt, FinishedAt: sb.FinishedAt, ExpiresAt: sb.ExpiresAt,
		IdleTimeoutSeconds: int64(sb.IdleTimeout / time.Second), LastActivityAt: sb.LastActivityAt,
		RemovedAt: sb.RemovedAt, Error: sb.Error, AcquiredFrom: sb.AcquiredFrom,
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if sb.RemovalReason != "" {
		reason := string(sb.RemovalReason)
		out.RemovalReason = &reason
	}
	return out
}
