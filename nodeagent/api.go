package nodeagent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/drbook/drbook/nodeagent/pki"
)

// apiHandler serves /healthz, /metrics, /v1/join (token auth), the key API
// (API key or node certificate) and /v1/internal/* (node certificate).
// Credentials are checked before any body is read (guard, authKeys,
// handleInternal), and every body is read with its endpoint's limit.
func (a *Agent) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.serveHealth)
	mux.Handle("GET /metrics", a.metrics.handler())
	mux.HandleFunc("POST /v1/join", func(w http.ResponseWriter, r *http.Request) {
		var req joinRequest
		if err := decodeBody(w, r, JoinMaxBody, &req); err != nil {
			writeJSON(w, nil, err)
			return
		}
		res, err := onLeader(r.Context(), a, "join", req, func(ctx context.Context) (joinResponse, error) {
			return a.joinLeader(ctx, req)
		})
		writeJSON(w, res, err)
	})
	mux.HandleFunc("POST /v1/internal/{verb}", a.handleInternal)
	routeKeyAPI(mux, a, a.authKeys)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, nil, fmt.Errorf("%w: no endpoint %s %s", ErrNotFound, r.Method, r.URL.Path))
	})
	return a.metrics.instrument(a.apiEndpoint(mux), a.guard(mux))
}

// serveHealth answers /healthz: 200 while raft runs, else 503 with the
// reason (e.g. "not in a cluster").
func (a *Agent) serveHealth(w http.ResponseWriter, _ *http.Request) {
	h := a.health()
	if !h.Raft {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(h)
		return
	}
	writeJSON(w, h, nil)
}

// decodeBody reads r's body (at most limit bytes) and decodes its JSON into
// v; an empty body leaves v as it is.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: decode body: %w", ErrUsage, err)
	}
	return nil
}

// peerNode returns the verified node id of the TLS client, if any.
func peerNode(r *http.Request) (string, bool) {
	if r.TLS == nil {
		return "", false
	}
	id, err := pki.NodeIDFromConn(*r.TLS)
	return id, err == nil
}

// peerRevoked reports whether the TLS client presented the certificate of
// a removed node.
func (a *Agent) peerRevoked(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && a.store.State().IsRevoked(derSHA256(r.TLS.PeerCertificates[0].Raw))
}

// authKeys admits a request that guard authenticated with a valid API key
// ("Authorization: Bearer drbkapi1...") or a cluster node certificate
// (forwarded calls); anything else is answered 401 before its body is read.
func (a *Agent) authKeys(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if authOf(r) == authNone {
			writeJSON(w, nil, errUnauthorized)
			return
		}
		next(w, r)
	}
}

// internalVerb handles one internal call from an authenticated node.
type internalVerb func(ctx context.Context, peer string, body []byte) (any, error)

func decodeJSON[T any](body []byte) (T, error) {
	var v T
	if len(body) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return v, nil
}

// leaderOnly wraps a verb that must run on the ready leader.
func (a *Agent) leaderOnly(fn internalVerb) internalVerb {
	return func(ctx context.Context, peer string, body []byte) (any, error) {
		if !a.store.Ready() {
			return nil, &notSentError{fmt.Errorf("%w: this node is not the leader", ErrUnavailable)}
		}
		return fn(ctx, peer, body)
	}
}

func (a *Agent) internalVerbs() map[string]internalVerb {
	return map[string]internalVerb{
		"health":  func(context.Context, string, []byte) (any, error) { return a.health(), nil },
		"applied": func(context.Context, string, []byte) (any, error) { return a.applied() },
		"membership": func(context.Context, string, []byte) (any, error) {
			return a.membership()
		},
		"removed": func(ctx context.Context, _ string, _ []byte) (any, error) {
			a.markRemoved(context.WithoutCancel(ctx))
			return struct{}{}, nil
		},
		"read_index": a.leaderOnly(func(ctx context.Context, _ string, _ []byte) (any, error) { return a.readIndex(ctx) }),
		"token_create": a.leaderOnly(func(ctx context.Context, _ string, body []byte) (any, error) {
			req, err := decodeJSON[tokenCreateReq](body)
			if err != nil {
				return nil, err
			}
			return a.TokenCreate(ctx, req.TTL)
		}),
		"join": a.leaderOnly(func(ctx context.Context, _ string, body []byte) (any, error) {
			req, err := decodeJSON[joinRequest](body)
			if err != nil {
				return nil, err
			}
			return a.joinLeader(ctx, req)
		}),
		"join_add": func(ctx context.Context, peer string, body []byte) (any, error) {
			req, err := decodeJSON[joinAddReq](body)
			if err != nil {
				return nil, err
			}
			return onLeader(ctx, a, "join_add_leader", req, func(ctx context.Context) (struct{}, error) {
				return a.joinAddLeader(ctx, peer, req)
			})
		},
		"join_add_leader": a.leaderOnly(func(ctx context.Context, _ string, body []byte) (any, error) {
			req, err := decodeJSON[joinAddReq](body)
			if err != nil {
				return nil, err
			}
			// The forwarding node authenticated the joiner; trust its claim.
			return a.joinAddLeader(ctx, req.NodeID, req)
		}),
		"remove": a.leaderOnly(func(ctx context.Context, _ string, body []byte) (any, error) {
			req, err := decodeJSON[removeReq](body)
			if err != nil {
				return nil, err
			}
			return a.removeLeader(ctx, req)
		}),
		"keys_create": a.leaderOnly(func(ctx context.Context, _ string, body []byte) (any, error) {
			req, err := decodeJSON[createReq](body)
			if err != nil {
				return nil, err
			}
			return a.createKeysLeader(ctx, req.Keys)
		}),
		"keys_load": a.leaderOnly(func(ctx context.Context, _ string, body []byte) (any, error) {
			req, err := decodeJSON[loadReq](body)
			if err != nil {
				return nil, err
			}
			return a.LoadKeys(ctx, req.Count, req.Batch, req.Group)
		}),
		"keys_delete": a.leaderOnly(func(ctx context.Context, _ string, body []byte) (any, error) {
			req, err := decodeJSON[idsReq](body)
			if err != nil || len(req.IDs) != 1 {
				return nil, fmt.Errorf("%w: one id", ErrUsage)
			}
			return a.DeleteKey(ctx, req.IDs[0])
		}),
		"backup_recorded": a.leaderOnly(func(ctx context.Context, _ string, body []byte) (any, error) {
			req, err := decodeJSON[BackupInfo](body)
			if err != nil {
				return nil, err
			}
			return a.recordBackup(ctx, req)
		}),
	}
}

func (a *Agent) handleInternal(w http.ResponseWriter, r *http.Request) {
	peer, ok := peerNode(r)
	if !ok {
		writeJSON(w, nil, errNoNodeCert)
		return
	}
	verb := r.PathValue("verb")
	if a.peerRevoked(r) && verb != "membership" && verb != "health" {
		// A removed node may still learn that it was removed (reset needs
		// that), and nothing else.
		writeJSON(w, nil, fmt.Errorf("%w: certificate of removed node %s", ErrTokenInvalid, peer))
		return
	}
	fn, ok := a.verbs[verb]
	if !ok {
		writeJSON(w, nil, fmt.Errorf("%w: unknown internal verb %q", ErrNotFound, verb))
		return
	}
	limit := int64(InternalMaxBody)
	if verb == "keys_create" {
		limit = forwardedKeysMaxBody
	}
	body, err := readBody(w, r, limit)
	if err != nil {
		writeJSON(w, nil, err)
		return
	}
	res, err := fn(r.Context(), peer, body)
	writeJSON(w, res, err)
}

func (a *Agent) applied() (appliedInfo, error) {
	info := a.store.Info()
	if !info.Running {
		return appliedInfo{}, ErrNoClusterState
	}
	return appliedInfo{AppliedIndex: info.AppliedIndex}, nil
}
