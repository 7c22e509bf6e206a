package nodeagent

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAPIRefusesBeforeReading: credentials are checked before the body is
// read (401 naming the API key), bodies over their endpoint's limit are
// refused (413 naming the limit), authenticated requests that break a rule
// keep their 409, and unknown endpoints answer JSON.
func TestAPIRefusesBeforeReading(t *testing.T) {
	a, apiKey := fuzzAgent(t)
	h := a.apiHandler()
	big := func(n int) string { return `{"keys":[{"name":"` + strings.Repeat("a", n) + `"}]}` }
	tests := []struct {
		name, method, path, auth, body string
		chunked                        bool
		status                         int
		want                           string // in the JSON error
		maxRead                        int64
	}{
		{"join over its limit, announced", "POST", "/v1/join", "", strings.Repeat("x", JoinMaxBody+1), false, 413, "limit of 4096 bytes", 0},
		{"join over its limit, chunked", "POST", "/v1/join", "", strings.Repeat("x", 3*JoinMaxBody), true, 413, "limit of 4096 bytes", JoinMaxBody + 1},
		{"join with a bad token", "POST", "/v1/join", "", `{"token":"drbkjoin1.a.b.c","node_id":"n"}`, false, 409, "refused by rule join-token-valid", JoinMaxBody + 1},
		{"keys without an API key", "POST", "/v1/keys", "", big(10), false, 401, "missing or wrong API key (header Authorization: Bearer drbkapi1.", 0},
		{"keys with a wrong API key", "POST", "/v1/keys", "Bearer drbkapi1.AAAA.AAAA", big(10), true, 401, "missing or wrong API key", 0},
		{"keys with a non-bearer header", "GET", "/v1/keys", "Basic Zm9vOmJhcg==", "", false, 401, "missing or wrong API key", 0},
		{"keys over the limit with the API key", "POST", "/v1/keys", "Bearer " + apiKey, big(KeyAPIMaxBody), false, 413, "limit of 1048576 bytes", 0},
		{"keys over the limit, chunked", "PUT", "/v1/keys/k", "Bearer " + apiKey, big(KeyAPIMaxBody), true, 413, "limit of 1048576 bytes", KeyAPIMaxBody + 1},
		{"keys create", "POST", "/v1/keys", "Bearer " + apiKey, `{"keys":[{"id":"t1"}]}`, false, 200, "", KeyAPIMaxBody + 1},
		{"keys bad id", "PUT", "/v1/keys/bad%20id", "Bearer " + apiKey, `{}`, false, 400, "key id", KeyAPIMaxBody + 1},
		{"internal without a node certificate", "POST", "/v1/internal/health", "Bearer " + apiKey, `{}`, false, 401, "node certificate", 0},
		{"unknown endpoint", "GET", "/v2/nothing", "", "", false, 404, "no endpoint GET /v2/nothing", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := &fuzzBody{head: []byte(tc.body)}
			r := httptest.NewRequest(tc.method, tc.path, nil)
			r.Body = body
			r.ContentLength = int64(len(tc.body))
			if tc.chunked {
				r.ContentLength = -1
			}
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body.Bytes())
			}
			if got := body.read.Load(); got > tc.maxRead {
				t.Fatalf("read %d body bytes, at most %d allowed", got, tc.maxRead)
			}
			if tc.status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") != "Bearer" {
				t.Fatalf("401 without WWW-Authenticate: %v", w.Header())
			}
			if tc.status < 400 {
				return
			}
			var we wireError
			if err := json.Unmarshal(w.Body.Bytes(), &we); err != nil || !strings.Contains(we.Error, tc.want) {
				t.Fatalf("error answer %s (%v), want it to name %q", w.Body.Bytes(), err, tc.want)
			}
			if (tc.status == 401 || tc.status == 413) && !we.NotApplied {
				t.Fatalf("a refused request is not marked not_applied: %s", w.Body.Bytes())
			}
		})
	}
	m := scrapeMetrics(t, a)
	for _, want := range []string{`drbook_api_refused_total{reason="unauthenticated"} 4`, `drbook_api_refused_total{reason="too_large"} 4`, `drbook_api_refused_total{reason="busy"} 0`} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
}

// TestAPIUnauthenticatedBound: with every unauthenticated slot taken, a
// request without credentials is answered 503 with Retry-After at once,
// while a request with a valid API key is still served.
func TestAPIUnauthenticatedBound(t *testing.T) {
	a, apiKey := fuzzAgent(t)
	h := a.apiHandler()
	for range cap(a.unauth) {
		a.unauth <- struct{}{}
	}
	get := func(auth string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/v1/keys?count", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := get("")
	b, _ := io.ReadAll(w.Body)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(string(b), "too many unauthenticated requests") {
		t.Fatalf("full bound: %d %v %s", w.Code, w.Header(), b)
	}
	if w := get("Bearer " + apiKey); w.Code != http.StatusOK {
		t.Fatalf("authenticated request under a full bound: %d %s", w.Code, w.Body.Bytes())
	}
	if m := scrapeMetrics(t, a); !strings.Contains(m, `drbook_api_refused_total{reason="busy"} 1`+"\n") {
		t.Errorf("busy refusal not counted:\n%s", m)
	}
	for range cap(a.unauth) {
		<-a.unauth
	}
	if w := get(""); w.Code != http.StatusUnauthorized {
		t.Fatalf("after the bound frees: %d %s", w.Code, w.Body.Bytes())
	}
}
