package clustertest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/nodeagent"
)

// TestDaemonEndpointsAndShutdown: /healthz and /metrics on the API address,
// the key API needs an API key, secrets stay out of token list, the admin
// socket is 0600, and SIGTERM shuts down cleanly with state kept.
func TestDaemonEndpointsAndShutdown(t *testing.T) {
	c := newCluster(t, 1)
	n := c.nodes[0]
	var lr nodeagent.LoadResult
	n.mustJSON(&lr, "keys", "load", "--count", "42")

	fi, err := os.Stat(filepath.Join(n.dir, "admin.sock"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket mode: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(n.dir, "node.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("node key mode: %v", err)
	}
	node, _ := os.ReadFile(filepath.Join(n.dir, "node.json"))
	if strings.Contains(string(node), "PRIVATE KEY") {
		t.Fatal("node.json holds a private key in clear")
	}

	client := newAPIClient(t, filepath.Join(n.dir, "ca.pem"), c.apiKey, 2)
	get := func(path string) (int, string) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://"+n.api+path, nil)
		resp, err := client.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, `"state":"leader"`) {
		t.Fatalf("healthz: %d %s", code, body)
	}
	code, body := get("/metrics")
	for _, want := range []string{`drbook_raft_state{state="leader"} 1`, "drbook_keys 42", "drbook_raft_applied_index ", "drbook_agent_build_info{"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
	// No backup yet: its time is absent, not a -1 sentinel.
	if strings.Contains(body, "drbook_last_backup") || strings.Contains(body, " -1\n") {
		t.Fatalf("metrics before the first backup:\n%s", body)
	}
	if code, _ := get("/v1/keys?count"); code == 200 {
		t.Fatal("key API answered without an API key")
	}
	var cnt nodeagent.CountResult
	if st, _ := client.do(context.Background(), http.MethodGet, "https://"+n.api+"/v1/keys?count", nil, &cnt); st != 200 || cnt.Keys != 42 {
		t.Fatalf("key API count: %d %+v", st, cnt)
	}

	tf := token(t, n, "")
	tok, _ := os.ReadFile(tf)
	secret := strings.Split(strings.TrimSpace(string(tok)), ".")[2]
	r := n.run(nil, "token", "list")
	if r.code != 0 || strings.Contains(r.stdout, secret) || !strings.Contains(r.stdout, `"state": "valid"`) {
		t.Fatalf("token list: %d %s", r.code, r.stdout)
	}

	n.stop()
	if !n.cmd.ProcessState.Success() {
		t.Fatalf("SIGTERM exit: %v", n.cmd.ProcessState)
	}
	logs, _ := os.ReadFile(n.logf.Name())
	if !strings.Contains(string(logs), "agent stopped") {
		t.Fatal("no clean shutdown logged")
	}
	if strings.Contains(string(logs), c.apiKey) || strings.Contains(string(logs), secret) {
		t.Fatal("a secret reached the log")
	}
	n.start()
	waitFor(t, 10*time.Second, "keys after restart", func() error {
		var cr nodeagent.CountResult
		if err := n.tryJSON(&cr, "keys", "count"); err != nil {
			return err
		}
		if cr.Keys != 42 {
			return errors.New("keys missing")
		}
		return nil
	})
}
