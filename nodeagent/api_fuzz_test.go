package nodeagent

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fuzzAgent bootstraps a one-node cluster in this process (raft and API on
// loopback) and returns it with its API key.
func fuzzAgent(tb testing.TB) (*Agent, string) {
	tb.Helper()
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	ctx := context.Background()
	a, err := New(ctx, Config{DataDir: tb.TempDir(), NodeID: "fuzz1", APIAddr: free(), RaftAddr: free(),
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogLevel: "off"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = a.Close() })
	br, err := a.Bootstrap(ctx)
	if err != nil || br.APIKey == "" {
		tb.Fatalf("bootstrap: %v %+v", err, br)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !a.store.Ready() {
		if time.Now().After(deadline) {
			tb.Fatal("fuzz agent never became a ready leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return a, br.APIKey
}

// fuzzBody is a body of n bytes that counts what the handler read, without
// holding them.
type fuzzBody struct {
	head []byte
	left int64
	read atomic.Int64
	// short: the client announced more than it sends and hangs up.
	short bool
}

func (b *fuzzBody) Read(p []byte) (int, error) {
	if len(b.head) > 0 {
		n := copy(p, b.head)
		b.head = b.head[n:]
		b.read.Add(int64(n))
		return n, nil
	}
	if b.left <= 0 {
		if b.short {
			return 0, io.ErrUnexpectedEOF
		}
		return 0, io.EOF
	}
	n := min(int64(len(p)), b.left)
	clear(p[:n])
	b.left -= n
	b.read.Add(n)
	return int(n), nil
}

func (b *fuzzBody) Close() error { return nil }

// validMethod is what a real server lets through to a handler.
func validMethod(m string) bool {
	return m != "" && len(m) <= 16 && !strings.ContainsFunc(m, func(r rune) bool { return r < 'A' || r > 'Z' })
}

// FuzzAPIHandler drives the agent's real HTTPS API handler (limits,
// guard, routes) with fuzzed methods, paths, headers, credentials and
// bodies, some of them announced or streamed far over every limit. It
// checks that the handler never panics, answers no 5xx but the documented
// 503, answers every error as JSON, reads no body byte before the caller
// is authenticated (join excepted, whose token is in its body) and never
// reads more than the endpoint's limit.
func FuzzAPIHandler(f *testing.F) {
	a, apiKey := fuzzAgent(f)
	h := bodyDeadline(2*time.Second, a.apiHandler())
	type seed struct {
		method, path string
		auth         uint8
		header       string
		mode         uint8
		extra        uint32
		body         string
	}
	for _, s := range []seed{
		{"POST", "/v1/join", 0, "", 0, 0, `{"token":"drbkjoin1.a.b.c","node_id":"x"}`},
		{"POST", "/v1/join", 0, "", 2, 60 << 20, `{"token":"`},
		{"POST", "/v1/join", 0, "", 1, 60 << 20, ``},
		{"POST", "/v1/keys", 0, "", 2, 60 << 20, `{"keys":[`},
		{"POST", "/v1/keys", 1, "", 0, 0, `{"keys":[{"id":"k1","material":"AAAA"}]}`},
		{"POST", "/v1/keys", 1, "", 1, 60 << 20, `{"keys":[`},
		{"PUT", "/v1/keys/k2", 1, "", 0, 0, `{"name":"n"}`},
		{"PUT", "/v1/keys/..", 1, "", 0, 0, `{}`},
		{"GET", "/v1/keys/k1", 1, "", 0, 0, ``},
		{"GET", "/v1/keys?count", 1, "", 0, 0, ``},
		{"GET", "/v1/keys/k1", 2, "Bearer drbkapi1.x.y", 0, 0, ``},
		{"DELETE", "/v1/keys/k2", 1, "", 0, 0, ``},
		{"POST", "/v1/internal/keys_create", 1, "", 0, 0, `{"keys":[{}]}`},
		{"POST", "/v1/internal/removed", 0, "", 0, 0, ``},
		{"GET", "/healthz", 0, "X-A: b\nContent-Length: 9", 0, 0, ``},
		{"GET", "/metrics", 0, "", 0, 0, ``},
		{"GET", "/v1/join", 0, "", 0, 0, ``},
		{"BREW", "/v1//keys/../join", 1, "Authorization: Bearer\nX-Forwarded-For: 1", 0, 0, `{}`},
	} {
		f.Add(s.method, s.path, s.auth, s.header, s.mode, s.extra, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, path string, auth uint8, header string, mode uint8, extra uint32, body []byte) {
		if !validMethod(method) {
			return
		}
		u, err := url.ParseRequestURI(path)
		if err != nil || u.Host != "" || u.Scheme != "" {
			return // a real server answers 400 before any handler
		}
		fb := &fuzzBody{head: body, left: int64(extra % (64 << 20))}
		size := int64(len(body)) + fb.left
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
		r.Method, r.URL, r.RequestURI, r.Body = method, u, path, fb
		switch mode % 3 {
		case 0:
			r.ContentLength = size // announced, and true
		case 1:
			r.ContentLength = -1 // chunked
		case 2:
			r.ContentLength = size + 1 + int64(extra%1000) // announced, but the client hangs up early
			fb.short = true
		}
		for _, line := range strings.Split(header, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				r.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		authed := false
		switch auth % 3 {
		case 1:
			r.Header.Set("Authorization", "Bearer "+apiKey)
			authed = true
		case 2:
			r.Header.Set("Authorization", header)
		}
		w := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(w, r)
		took := time.Since(start)
		t.Logf("%s %s (auth %d, %d bytes offered) -> %d in %s, %d bytes read", method, path, auth%3, size, w.Code, took.Round(time.Millisecond), fb.read.Load())

		if took > 15*time.Second {
			t.Fatalf("%s %s took %s", method, path, took)
		}
		st := w.Code
		if st >= 500 && st != http.StatusServiceUnavailable {
			t.Fatalf("%s %s: status %d: %s", method, path, st, w.Body.Bytes())
		}
		if st >= 400 {
			var we wireError
			if err := json.Unmarshal(w.Body.Bytes(), &we); err != nil || we.Error == "" {
				t.Fatalf("%s %s: %d answer is not a JSON error: %q", method, path, st, w.Body.Bytes())
			}
		}
		// What the handler may read: the join body up to its limit, an
		// authenticated key API body up to its limit, nothing else.
		var most int64
		switch {
		case r.URL.Path == "/v1/join":
			most = JoinMaxBody + 1
		case authed:
			most = KeyAPIMaxBody + 1
		}
		if got := fb.read.Load(); got > most {
			t.Fatalf("%s %s (authenticated %v, %d bytes offered): handler read %d bytes, at most %d allowed", method, path, authed, size, got, most)
		}
		if (method == http.MethodPost || method == http.MethodPut) && st == http.StatusOK && most > 0 && size >= most {
			t.Fatalf("%s %s: a %d-byte body over the %d-byte limit was accepted", method, path, size, most-1)
		}
	})
}
