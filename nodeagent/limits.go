package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/drbook/drbook/nodeagent/token"
)

// Request body limits of the HTTPS API and the admin socket. A body over
// its endpoint's limit is refused with 413 before it is read (when the
// client announced its length) or as soon as the limit is passed (when it
// did not): the agent never holds more than the limit of one body per
// request.
const (
	// JoinMaxBody bounds POST /v1/join (a token, a node id and two
	// addresses fit in a few hundred bytes).
	JoinMaxBody = 4 << 10
	// InternalMaxBody bounds POST /v1/internal/{verb} between nodes, except
	// keys_create (forwardedKeysMaxBody).
	InternalMaxBody = 4 << 10
	// KeyAPIMaxBody bounds the body of POST /v1/keys and PUT /v1/keys/{id}:
	// 1 MiB of JSON (a few thousand key specs per request).
	KeyAPIMaxBody = 1 << 20
	// forwardedKeysMaxBody bounds the internal keys_create call, which
	// carries a key API request a follower re-encoded for the leader; JSON
	// re-encoding can grow a string up to six times (\u escapes), so it gets
	// eight times the key API limit. Only cluster members can send it.
	forwardedKeysMaxBody = 8 * KeyAPIMaxBody
	// AdminMaxBody bounds a request on the 0600 admin socket (a keys verify
	// manifest of many keys is the largest).
	AdminMaxBody = 64 << 20
	// apiMaxHeaderBytes bounds the request line and headers on the API.
	apiMaxHeaderBytes = 64 << 10
)

// Defaults of the API's read timeouts and of the bound on concurrent
// unauthenticated requests (Config fields of the same meaning).
const (
	DefaultAPIHeaderTimeout   = 5 * time.Second
	DefaultAPIBodyTimeout     = 10 * time.Second
	DefaultMaxUnauthenticated = 32
	// apiWriteTimeout bounds writing a response (a long key list included).
	apiWriteTimeout = 2 * time.Minute
	// apiIdleTimeout closes idle keep-alive connections.
	apiIdleTimeout = 60 * time.Second
)

// errUnauthorized is answered to key API calls without valid credentials.
var errUnauthorized = &notSentError{fmt.Errorf("%w: missing or wrong API key (header Authorization: Bearer %s.…)", ErrUnauthenticated, token.APIKeyPrefix)}

// errNoNodeCert is answered to internal calls without a node certificate.
var errNoNodeCert = &notSentError{fmt.Errorf("%w: internal calls need a cluster node certificate", ErrUnauthenticated)}

// statusError gives an error its own HTTP status; it unwraps to the error
// that carries the sentinel and exit code.
type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// httpStatus is the HTTP status of an error answer.
func httpStatus(err error) int {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.status
	case errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrExists):
		return http.StatusConflict
	}
	switch ExitCode(err) {
	case ExitRefused:
		return http.StatusConflict
	case ExitUsage:
		return http.StatusBadRequest
	case ExitNotFound:
		return http.StatusNotFound
	case ExitUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// readBody reads r's body up to limit bytes. A body announced larger than
// limit is refused without reading a byte; one that turns out larger stops
// at limit+1 bytes. Both answer ErrTooLarge; a body that arrives slower
// than the read timeout answers 408.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		closeAfter(w, r)
		return nil, tooLarge(r, limit, r.ContentLength)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		// The body is in: lift bodyDeadline's deadline, or it would cancel
		// the request's context while the handler still runs.
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		return body, nil
	}
	closeAfter(w, r)
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge(r, limit, -1)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return nil, &statusError{http.StatusRequestTimeout, &notSentError{fmt.Errorf("%w: request body not received within the read timeout (drbook-agent serve --api-body-timeout)", ErrUsage)}}
	default:
		return nil, &notSentError{fmt.Errorf("%w: read body: %w", ErrUsage, err)}
	}
}

// closeAfter closes an HTTP/1 connection after the answer, so the rest of
// a refused body is not waited for. HTTP/2 resets just the stream (a
// "Connection: close" there would end every other stream of the
// connection with GOAWAY).
func closeAfter(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor < 2 {
		w.Header().Set("Connection", "close")
	}
}

func tooLarge(r *http.Request, limit, announced int64) error {
	what := "body over"
	if announced >= 0 {
		what = "body of " + strconv.FormatInt(announced, 10) + " bytes over"
	}
	return &notSentError{fmt.Errorf("%w: %s %s: %s the limit of %d bytes", ErrTooLarge, r.Method, r.URL.Path, what, limit)}
}

// bodyDeadline gives a request that has a body d to deliver it, counted
// from the end of its headers (slowloris protection); readBody lifts the
// deadline once the body is in. A body the handler does not read (a
// refused request) stays under the deadline while the server discards it.
func bodyDeadline(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		next.ServeHTTP(w, r)
	})
}

// authKind is what a request authenticated with, kept in its context.
type authKind int

const (
	authNone   authKind = iota
	authNode            // a member's certificate (verified, not revoked)
	authAPIKey          // a valid API key
)

type authCtxKey struct{}

// authOf returns how r authenticated (set by guard).
func authOf(r *http.Request) authKind {
	k, _ := r.Context().Value(authCtxKey{}).(authKind)
	return k
}

// authenticate checks r's credentials without reading its body: a verified
// node certificate that was not revoked, or a valid API key.
func (a *Agent) authenticate(r *http.Request) authKind {
	if _, ok := peerNode(r); ok && !a.peerRevoked(r) {
		return authNode
	}
	plain, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return authNone
	}
	id, secret, err := token.ParseAPIKey(plain)
	if err != nil {
		return authNone
	}
	if rec, found := a.store.State().APIKey(id); found && rec.Verify(secret) {
		return authAPIKey
	}
	return authNone
}

// guard authenticates every API request before its handler runs and
// bounds the requests without valid credentials (join, health, metrics and
// refused calls) to cfg.MaxUnauthenticated at a time: over the bound, the
// request is answered 503 with Retry-After at once, never queued.
func (a *Agent) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/") {
			// "OPTIONS *" and other non-path targets: ServeMux would answer
			// a bare 400; answer it as every other refusal, in JSON.
			writeJSON(w, nil, &statusError{http.StatusBadRequest, fmt.Errorf("request target %q is not a path", r.RequestURI)})
			return
		}
		kind := a.authenticate(r)
		if kind == authNone {
			select {
			case a.unauth <- struct{}{}:
				defer func() { <-a.unauth }()
			default:
				a.refused[refusedBusy].Add(1)
				w.Header().Set("Retry-After", "1")
				writeJSON(w, nil, &notSentError{fmt.Errorf("%w: too many unauthenticated requests in flight (limit %d); retry later", ErrUnavailable, cap(a.unauth))})
				return
			}
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), authCtxKey{}, kind)))
		switch sw.status {
		case http.StatusUnauthorized:
			a.refused[refusedUnauthenticated].Add(1)
		case http.StatusRequestEntityTooLarge:
			a.refused[refusedTooLarge].Add(1)
		case http.StatusRequestTimeout:
			a.refused[refusedTimeout].Add(1)
		}
	})
}

// Reasons an API request was refused, counted for /metrics.
const (
	refusedUnauthenticated = iota
	refusedTooLarge
	refusedTimeout
	refusedBusy
	refusedReasons
)

var refusedNames = [refusedReasons]string{"unauthenticated", "too_large", "timeout", "busy"}

// statusWriter remembers the status of an answer; Unwrap keeps
// http.ResponseController working through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
