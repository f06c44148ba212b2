package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"syscall"

	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/store"
)

// apiError is an error with its HTTP status and API code already decided.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func conflict(msg string) error { return &apiError{http.StatusConflict, api.CodeConflict, msg} }

func unavailable(msg string) error {
	return &apiError{http.StatusServiceUnavailable, api.CodeUnavailable, msg}
}

// isDockerDown reports whether err means the engine could not be reached or
// failed on its side. The client reports that in several shapes: its own
// connection error, an engine answering 5xx (as it does while it shuts
// down), a failed dial under a hijacked call (exec attach), a connection
// cut midway, or a call that timed out.
func isDockerDown(err error) bool {
	var opErr *net.OpError
	return client.IsErrConnectionFailed(err) || errdefs.IsUnavailable(err) || errdefs.IsSystem(err) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &opErr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}

// toAPIError is the one place that decides how an error is answered.
func toAPIError(err error) *apiError {
	var ae *apiError
	var mbe *http.MaxBytesError
	var qe *store.QuotaError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return &apiError{http.StatusRequestEntityTooLarge, api.CodePayloadTooLarge, "body: must be at most " + strconv.FormatInt(mbe.Limit, 10) + " bytes"}
	case errors.As(err, &qe):
		return &apiError{http.StatusTooManyRequests, api.CodeQuotaExceeded, qe.Error()}
	case errors.Is(err, store.ErrNotFound):
		return &apiError{http.StatusNotFound, api.CodeNotFound, err.Error()}
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrInvalidTransition):
		return &apiError{http.StatusConflict, api.CodeConflict, err.Error()}
	case store.IsUnavailable(err):
		return &apiError{http.StatusServiceUnavailable, api.CodeUnavailable, "database unavailable: " + err.Error()}
	case isDockerDown(err):
		return &apiError{http.StatusServiceUnavailable, api.CodeUnavailable, "docker unavailable: " + err.Error()}
	}
	return &apiError{http.StatusInternalServerError, api.CodeInternal, err.Error()}
}

// writeError answers with err's status and the {"error":{...}} body. Server
// faults are logged; client mistakes are not, they are the caller's to read.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	ae := toAPIError(err)
	if ae.status >= 500 {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "code", ae.code, "err", err)
	}
	writeJSON(w, ae.status, api.ErrorResponse{Error: api.ErrorBody{Code: ae.code, Message: ae.msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
