package nodeagent

import (
	"context"
	"net/http"
)

// KeyService is what the HTTPS key API needs of the node: its key
// operations (writes forwarded to the leader, reads linearizable unless
// stale). *Agent implements it; the key API's routes are built on it
// alone, so they can be tested against a fake.
type KeyService interface {
	CreateKeys(ctx context.Context, specs []KeySpec) ([]CreateResult, error)
	GetKey(ctx context.Context, id string, withMaterial, stale bool) (KeyInfo, error)
	DeleteKey(ctx context.Context, id string) (DeleteResult, error)
	ListKeys(ctx context.Context, stale bool) ([]KeyInfo, error)
	CountKeys(ctx context.Context, stale bool) (CountResult, error)
}

var _ KeyService = (*Agent)(nil)

// routeKeyAPI mounts the key API on mux. auth admits or refuses a request
// before its body is read (the agent's authKeys: an API key or a member's
// certificate).
func routeKeyAPI(mux *http.ServeMux, keys KeyService, auth func(http.HandlerFunc) http.HandlerFunc) {
	mux.HandleFunc("POST /v1/keys", auth(func(w http.ResponseWriter, r *http.Request) {
		var req createReq
		if err := decodeBody(w, r, KeyAPIMaxBody, &req); err != nil {
			writeJSON(w, nil, err)
			return
		}
		res, err := keys.CreateKeys(r.Context(), req.Keys)
		writeJSON(w, res, err)
	}))
	mux.HandleFunc("PUT /v1/keys/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		var spec KeySpec
		if err := decodeBody(w, r, KeyAPIMaxBody, &spec); err != nil {
			writeJSON(w, nil, err)
			return
		}
		spec.ID = r.PathValue("id")
		res, err := keys.CreateKeys(r.Context(), []KeySpec{spec})
		if err != nil {
			writeJSON(w, nil, err)
			return
		}
		writeJSON(w, res[0], nil)
	}))
	mux.HandleFunc("GET /v1/keys/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		res, err := keys.GetKey(r.Context(), r.PathValue("id"), true, r.URL.Query().Has("stale"))
		writeJSON(w, res, err)
	}))
	mux.HandleFunc("DELETE /v1/keys/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		res, err := keys.DeleteKey(r.Context(), r.PathValue("id"))
		writeJSON(w, res, err)
	}))
	mux.HandleFunc("GET /v1/keys", auth(func(w http.ResponseWriter, r *http.Request) {
		stale := r.URL.Query().Has("stale")
		if r.URL.Query().Has("count") {
			res, err := keys.CountKeys(r.Context(), stale)
			writeJSON(w, res, err)
			return
		}
		res, err := keys.ListKeys(r.Context(), stale)
		writeJSON(w, res, err)
	}))
}
