package clustertest

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/nodeagent"
)

// hostileBody is a bounded generator of n bytes of junk: it never holds
// more than one read buffer, whatever n is, and counts what was taken.
type hostileBody struct {
	left int64
	sent *atomic.Int64
}

func (b *hostileBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), b.left)
	for i := range p[:n] {
		p[i] = '['
	}
	b.left -= n
	b.sent.Add(n)
	return int(n), nil
}

// procStatusKB reads a "VmXxx:  N kB" field of /proc/PID/status.
func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// rssWatchdog kills the agent if its RSS passes limitKB, so a regression
// fails the test instead of exhausting the machine. It returns a function
// that stops the watchdog and reports whether it fired.
func rssWatchdog(t *testing.T, n *node, limitKB int64) func() bool {
	t.Helper()
	stop := make(chan struct{})
	var fired atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if kb, err := procStatusKB(n.cmd.Process.Pid, "VmRSS"); err == nil && kb > limitKB {
				fired.Store(true)
				_ = n.cmd.Process.Signal(syscall.SIGKILL)
				return
			}
		}
	}()
	return func() bool { close(stop); wg.Wait(); return fired.Load() }
}

// hostileClient trusts the cluster CA over HTTP/1.1, or HTTP/2 with h2.
func hostileClient(t *testing.T, caFile string, h2 bool) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("bad CA PEM")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: h2}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// TestAgentRefusesHostileBodiesBeforeAllocating: eight parallel 60 MB
// posts to /v1/join, eight to the key API without credentials and eight
// with a valid API key (all to a follower, half of each announcing their
// length, half chunked, half over HTTP/2) are refused with 413/401; the
// agent's peak RSS (VmHWM) stays under 100 MB and it keeps serving.
func TestAgentRefusesHostileBodiesBeforeAllocating(t *testing.T) {
	const (
		posts    = 8
		bodySize = 60 << 20
		hwmLimit = 100 << 10 // kB
	)
	c := newCluster(t, 2)
	n1, n2 := c.nodes[0], c.nodes[1]
	var cr []nodeagent.CreateResult
	n1.mustJSON(&cr, "keys", "create", "--id", "survivor")
	before, err := procStatusKB(n2.cmd.Process.Pid, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	stopWatch := rssWatchdog(t, n2, 400<<10)

	ca := filepath.Join(n1.dir, "ca.pem")
	clients := map[bool]*http.Client{false: hostileClient(t, ca, false), true: hostileClient(t, ca, true)}
	type attack struct {
		name, method, path, apiKey string
		want                       int
	}
	attacks := []attack{
		{"join", http.MethodPost, "/v1/join", "", http.StatusRequestEntityTooLarge},
		{"keys without API key", http.MethodPost, "/v1/keys", "", http.StatusUnauthorized},
		{"keys with a wrong API key", http.MethodPut, "/v1/keys/x", "drbkapi1.nope.nope", http.StatusUnauthorized},
		{"keys with the API key", http.MethodPost, "/v1/keys", c.apiKey, http.StatusRequestEntityTooLarge},
	}
	var sent atomic.Int64
	type answer struct {
		name   string
		status int
		body   string
		err    error
	}
	answers := make(chan answer, len(attacks)*posts)
	var wg sync.WaitGroup
	start := time.Now()
	for _, a := range attacks {
		for i := range posts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				body := &hostileBody{left: bodySize, sent: &sent}
				req, err := http.NewRequestWithContext(ctx, a.method, "https://"+n2.api+a.path, body)
				if err != nil {
					answers <- answer{name: a.name, err: err}
					return
				}
				if i%2 == 0 {
					req.ContentLength = bodySize // announced; odd ones are chunked
				}
				req.Header.Set("Content-Type", "application/json")
				if a.apiKey != "" && !strings.HasPrefix(a.name, "keys without") {
					req.Header.Set("Authorization", "Bearer "+a.apiKey)
				}
				resp, err := clients[i%4 >= 2].Do(req)
				if err != nil {
					answers <- answer{name: a.name, err: err}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				ans := answer{name: fmt.Sprintf("%s #%d (%s)", a.name, i, resp.Proto), status: resp.StatusCode, body: string(b)}
				if resp.StatusCode != a.want {
					ans.err = fmt.Errorf("status %d, want %d: %s", resp.StatusCode, a.want, b)
				}
				answers <- ans
			}()
		}
	}
	wg.Wait()
	close(answers)
	elapsed := time.Since(start)
	if stopWatch() {
		t.Fatalf("agent RSS passed 400 MB under %d posts of %d MB: killed", len(attacks)*posts, bodySize>>20)
	}
	for a := range answers {
		if a.err != nil {
			t.Errorf("%s: %v", a.name, a.err)
			continue
		}
		var w struct {
			Error    string `json:"error"`
			ExitCode int    `json:"exit_code"`
		}
		if err := json.Unmarshal([]byte(a.body), &w); err != nil || w.Error == "" {
			t.Errorf("%s: answer is not a JSON error: %q", a.name, a.body)
		}
		switch a.status {
		case http.StatusUnauthorized:
			if !strings.Contains(w.Error, "missing or wrong API key") || !strings.Contains(w.Error, "Authorization: Bearer") {
				t.Errorf("%s: 401 does not name the API key: %q", a.name, w.Error)
			}
		case http.StatusRequestEntityTooLarge:
			if !strings.Contains(w.Error, "limit of ") {
				t.Errorf("%s: 413 does not name the limit: %q", a.name, w.Error)
			}
		}
	}
	hwm, err := procStatusKB(n2.cmd.Process.Pid, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("follower VmHWM %.1f MB before, %.1f MB after %d posts of %d MB (%.0f MB offered in total, %.1f MB produced by the generators before the refusals) in %s",
		float64(before)/1024, float64(hwm)/1024, len(attacks)*posts, bodySize>>20,
		float64(len(attacks)*posts*bodySize)/(1<<20), float64(sent.Load())/(1<<20), elapsed.Round(time.Millisecond))
	if hwm > hwmLimit {
		t.Fatalf("follower peak RSS %d kB, want under %d kB", hwm, hwmLimit)
	}

	// It keeps serving: health, status and a key read through the API.
	api := newAPIClient(t, ca, c.apiKey, 2)
	var ki nodeagent.KeyInfo
	if st, _ := api.do(context.Background(), http.MethodGet, "https://"+n2.api+"/v1/keys/survivor", nil, &ki); st != http.StatusOK || ki.ID != "survivor" {
		t.Fatalf("key read after the attack: %d %+v", st, ki)
	}
	resp, err := api.http.Get("https://" + n2.api + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz after the attack: %d", resp.StatusCode)
	}
	if st := n2.status(); st.State != "follower" {
		t.Fatalf("follower state after the attack: %q", st.State)
	}
	resp, err = api.http.Get("https://" + n2.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`drbook_api_refused_total{reason="too_large"} %d`, 2*posts),
		fmt.Sprintf(`drbook_api_refused_total{reason="unauthenticated"} %d`, 2*posts),
	} {
		if !strings.Contains(string(metrics), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
}

// slowConn opens a TLS connection to the API and sends head, then trickles
// trickle one byte every interval until the server answers or closes; it
// returns when the connection ends, with what the server sent.
type slowResult struct {
	answer  string
	elapsed time.Duration
}

func slowloris(t *testing.T, api string, pool *x509.CertPool, head, trickle string, interval time.Duration, done chan<- slowResult) {
	t.Helper()
	conn, err := tls.Dial("tcp", api, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i = (i + 1) % len(trickle) {
			select {
			case <-stop:
				return
			case <-time.After(interval):
			}
			if _, err := conn.Write([]byte{trickle[i]}); err != nil {
				return
			}
		}
	}()
	go func() {
		defer conn.Close()
		defer close(stop)
		_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		b, _ := io.ReadAll(bufio.NewReader(conn))
		done <- slowResult{answer: string(b), elapsed: time.Since(start)}
	}()
}

// TestAgentCutsOffSlowClients: a client that sends a join's headers and
// then trickles its body is answered 408 and cut off by the body read
// timeout; one that trickles its headers is cut off by the header timeout.
// While two slow bodies hold both slots of --api-max-unauthenticated 2, a
// third unauthenticated request gets 503 with Retry-After at once; after
// the cut-off the slots are free again.
func TestAgentCutsOffSlowClients(t *testing.T) {
	const timeout = 2 * time.Second
	c := newCluster(t, 1, "--api-body-timeout", timeout.String(), "--api-header-timeout", timeout.String(), "--api-max-unauthenticated", "2")
	n := c.nodes[0]
	pemb, err := os.ReadFile(filepath.Join(n.dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemb)
	client := hostileClient(t, filepath.Join(n.dir, "ca.pem"), false)
	postJoin := func() (int, http.Header, string) {
		resp, err := client.Post("https://"+n.api+"/v1/join", "application/json", strings.NewReader(`{"token":"drbkjoin1.x.y.z","node_id":"n9"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}

	done := make(chan slowResult, 3)
	head := fmt.Sprintf("POST /v1/join HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", n.api)
	slowloris(t, n.api, pool, head, `"token":`, 200*time.Millisecond, done)
	slowloris(t, n.api, pool, head, `"token":`, 200*time.Millisecond, done)
	// The slow bodies take both unauthenticated slots: the next is refused.
	waitFor(t, 5*time.Second, "both slots taken", func() error {
		st, h, body := postJoin()
		if st != http.StatusServiceUnavailable {
			return fmt.Errorf("status %d: %s", st, body)
		}
		if h.Get("Retry-After") == "" || !strings.Contains(body, "too many unauthenticated requests") {
			t.Fatalf("503 without Retry-After or reason: %v %s", h, body)
		}
		return nil
	})
	// Headers trickled one byte at a time.
	slowloris(t, n.api, pool, "POST /v1/join HTTP/1.1\r\n", "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 200*time.Millisecond, done)
	timedOut := 0
	for range 3 {
		r := <-done
		t.Logf("slow client cut off after %s, answer %q", r.elapsed.Round(10*time.Millisecond), firstLine(r.answer))
		if r.elapsed > 4*timeout+5*time.Second {
			t.Errorf("slow client held for %s (timeout %s)", r.elapsed, timeout)
		}
		if r.elapsed < timeout/2 {
			t.Errorf("slow client cut off after %s, before the %s timeout", r.elapsed, timeout)
		}
		switch {
		case strings.HasPrefix(r.answer, "HTTP/1.1 408 "):
			timedOut++
			if !strings.Contains(r.answer, "read timeout") {
				t.Errorf("408 does not say why: %q", r.answer)
			}
		case r.answer != "":
			t.Errorf("slow client answered %q, want 408 (body) or a closed connection (headers)", firstLine(r.answer))
		}
	}
	if timedOut != 2 {
		t.Errorf("%d slow bodies answered 408, want 2", timedOut)
	}
	// The same over HTTP/2: the stream is answered 408 at the timeout.
	h2 := hostileClient(t, filepath.Join(n.dir, "ca.pem"), true)
	pr, pw := io.Pipe()
	go func() {
		if _, err := io.WriteString(pw, `{"token":`); err != nil {
			return
		}
		for {
			time.Sleep(200 * time.Millisecond)
			if _, err := pw.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "https://"+n.api+"/v1/join", pr)
	req.ContentLength = 1000
	start := time.Now()
	resp, err := h2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pw.CloseWithError(errors.New("test done"))
	took := time.Since(start)
	t.Logf("slow HTTP/2 body answered %d after %s: %s", resp.StatusCode, took.Round(10*time.Millisecond), strings.TrimSpace(string(b)))
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout || took < timeout/2 || took > 4*timeout+5*time.Second {
		t.Errorf("slow HTTP/2 body: %s %d after %s, want HTTP/2 408 after about %s", resp.Proto, resp.StatusCode, took, timeout)
	}
	// Slots are free again: a join with a bogus token reaches the rule.
	waitFor(t, 5*time.Second, "slots free", func() error {
		st, _, body := postJoin()
		if st != http.StatusConflict || !strings.Contains(body, "refused by rule join-token-valid") {
			return fmt.Errorf("status %d: %s", st, body)
		}
		return nil
	})
	if st := n.status(); st.State != "leader" {
		t.Fatalf("state after slow clients: %q", st.State)
	}
	resp, err = client.Get("https://" + n.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `drbook_api_refused_total{reason="timeout"} 3`+"\n") || strings.Contains(string(metrics), `drbook_api_refused_total{reason="busy"} 0`+"\n") {
		t.Errorf("metrics do not count 3 slow bodies and the busy refusals:\n%s", metrics)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}
