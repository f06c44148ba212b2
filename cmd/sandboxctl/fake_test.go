package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sandboxd/sandboxd/api"
)

// fakeDaemon answers the API from canned records over a Unix socket, the
// way sandboxd does, and remembers the last request bodies it got.
type fakeDaemon struct {
	sock      string
	sandboxes []api.Sandbox

	mu       sync.Mutex
	lastExec api.ExecRequest
	lastList string // the query of the last list
	files    []byte // the last tar uploaded
	filesDir string // where it was to go
}

func startFake(t *testing.T, sandboxes []api.Sandbox) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{sock: filepath.Join(t.TempDir(), "sandboxd.sock"), sandboxes: sandboxes}
	ln, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sandboxes", f.list)
	mux.HandleFunc("GET /v1/sandboxes/{id}", func(w http.ResponseWriter, r *http.Request) {
		if sb, ok := f.get(r.PathValue("id")); ok {
			writeJSON(w, http.StatusOK, sb)
			return
		}
		notFound(w, r.PathValue("id"))
	})
	mux.HandleFunc("POST /v1/sandboxes/{id}/exec", f.exec)
	mux.HandleFunc("PUT /v1/sandboxes/{id}/files", f.putFiles)
	mux.HandleFunc("GET /v1/sandboxes/{id}/files", f.getFiles)
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusServiceUnavailable, api.Health{Status: "degraded", Version: "test", Docker: "ok", Database: "connection refused"})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *fakeDaemon) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.lastList = r.URL.RawQuery
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, api.ListResponse{Sandboxes: f.sandboxes})
}

func (f *fakeDaemon) get(id string) (api.Sandbox, bool) {
	for _, sb := range f.sandboxes {
		if sb.ID == id {
			return sb, true
		}
	}
	return api.Sandbox{}, false
}

func (f *fakeDaemon) exec(w http.ResponseWriter, r *http.Request) {
	var req api.ExecRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, api.ErrorResponse{Error: api.ErrorBody{Code: api.CodeInvalidArgument, Message: err.Error()}})
		return
	}
	f.mu.Lock()
	f.lastExec = req
	f.mu.Unlock()
	if _, ok := f.get(r.PathValue("id")); !ok {
		notFound(w, r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, api.ExecResult{ExitCode: 3, Stdout: "out:" + req.Stdin, Stderr: "err\n", StdoutTruncated: true})
}

func (f *fakeDaemon) putFiles(w http.ResponseWriter, r *http.Request) {
	if _, ok := f.get(r.PathValue("id")); !ok {
		notFound(w, r.PathValue("id")) // before reading the body, as a daemon may
		return
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.files, f.filesDir = b, r.URL.Query().Get("path")
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// getFiles answers with the last upload, as a sandbox would after it.
func (f *fakeDaemon) getFiles(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-tar")
	w.Write(f.files)
}

func notFound(w http.ResponseWriter, id string) {
	writeJSON(w, http.StatusNotFound, api.ErrorResponse{Error: api.ErrorBody{Code: api.CodeNotFound, Message: "sandbox " + id + " not found"}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
