package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Errors of the server package itself (configuration and lifecycle).
var (
	// ErrConfig: the Config is unusable; the wrapped text says why.
	ErrConfig = errors.New("server: invalid config")
	// ErrAlreadyStarted: Serve called twice.
	ErrAlreadyStarted = errors.New("server: already started")
)

// apiError is an error answer: a status, a stable snake_case code and a
// sentence for people. extra fields (409/410 device lists) are added
// beside "error" in the body.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration
	extra      map[string]any
}

func (e *apiError) Error() string {
	return fmt.Sprintf("server: %d %s: %s", e.status, e.code, e.message)
}

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, code, format, args...)
}

var (
	errUnauthorized = newError(http.StatusUnauthorized, "unauthorized",
		"The request needs a valid device credential (HTTP Basic: user \"<account id>.<device id>\", password the device credential).")
	errNotFound         = newError(http.StatusNotFound, "not_found", "There is no such endpoint.")
	errAccountNotFound  = newError(http.StatusNotFound, "account_not_found", "No account has this id or username.")
	errDeviceNotFound   = newError(http.StatusNotFound, "device_not_found", "The account has no such device.")
	errUsernameTaken    = newError(http.StatusConflict, "username_taken", "This username is already taken; pick another one.")
	errDeviceLimit      = newError(http.StatusConflict, "device_limit", "The account already has the maximum number of devices; remove one first.")
	errInternal         = newError(http.StatusInternalServerError, "internal", "The server failed to handle the request; it has been logged. Retry later.")
	errUnavailable      = newError(http.StatusServiceUnavailable, "unavailable", "The server is shutting down or its database is unreachable. Retry later.")
	errNotWebSocket     = newError(http.StatusBadRequest, "websocket_required", "This endpoint needs a WebSocket upgrade request.")
	errUnsupportedMedia = newError(http.StatusUnsupportedMediaType, "unsupported_media_type", "The request body must be JSON with Content-Type: application/json.")
)

func errBodyTooLarge(limit int64) *apiError {
	return newError(http.StatusRequestEntityTooLarge, "body_too_large", "The request body is larger than the %d bytes this endpoint accepts.", limit)
}

func errMethod(allow string) *apiError {
	e := newError(http.StatusMethodNotAllowed, "method_not_allowed", "This endpoint does not accept that method; it accepts %s.", allow)
	e.extra = map[string]any{}
	return e
}

func errRateLimited(retry time.Duration) *apiError {
	e := newError(http.StatusTooManyRequests, "rate_limited", "Too many requests of this kind; retry after the number of seconds in Retry-After.")
	e.retryAfter = retry
	return e
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers with the JSON error body.
func writeError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		secs := int64((e.retryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="veil", charset="UTF-8"`)
	}
	body := map[string]any{"error": errorBody{Code: e.code, Message: e.message}}
	for k, v := range e.extra {
		body[k] = v
	}
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own response types are marshalled; this is a bug.
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"The server failed to encode its answer."}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
