package clustertest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/drbook/drbook/nodeagent"
)

// apiClient calls the HTTPS key API with an API key.
type apiClient struct {
	http   *http.Client
	apiKey string
	mu     sync.Mutex
	errs   map[string]int // error answers seen, for the log
}

func newAPIClient(t testing.TB, caFile, apiKey string, conns int) *apiClient {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("bad CA PEM")
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &apiClient{http: &http.Client{Transport: tr, Timeout: 5 * time.Second}, apiKey: apiKey}
}

// outcome of one API call for the checker.
type outcome int

const (
	definite  outcome = iota // the answer is known
	ambiguous                // the effect may or may not have happened
	notSent                  // the request certainly had no effect
)

func (c *apiClient) do(ctx context.Context, method, url string, body any, out any) (int, outcome) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(ctx, method, url, rd)
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return 0, notSent
		}
		return 0, ambiguous
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		if out != nil && json.Unmarshal(b, out) != nil {
			return resp.StatusCode, ambiguous
		}
		return resp.StatusCode, definite
	case http.StatusNotFound:
		return resp.StatusCode, definite
	default:
		var w struct {
			NotApplied bool `json:"not_applied"`
		}
		if json.Unmarshal(b, &w) == nil && w.NotApplied {
			return resp.StatusCode, notSent
		}
		c.mu.Lock()
		if c.errs == nil {
			c.errs = map[string]int{}
		}
		if len(b) > 80 {
			b = b[:80]
		}
		c.errs[fmt.Sprintf("%d %s", resp.StatusCode, b)]++
		c.mu.Unlock()
		return resp.StatusCode, ambiguous
	}
}

// linInput is one operation on one key.
type linInput struct {
	Op    string // create, get, delete
	Key   string
	Value string
}

// linOutput is its observed result.
type linOutput struct {
	OK        bool   // created / found / deleted
	Value     string // for get
	Ambiguous bool
}

// kvModel is the sequential specification of one key: absent ("") or a
// value; ambiguous writes may or may not have taken effect.
func kvModel() porcupine.Model {
	nd := porcupine.NondeterministicModel{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range h {
				k := op.Input.(linInput).Key
				if _, ok := by[k]; !ok {
					keys = append(keys, k)
				}
				by[k] = append(by[k], op)
			}
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, by[k])
			}
			return out
		},
		Init: func() []any { return []any{""} },
		Step: func(state, input, output any) []any {
			s, in, out := state.(string), input.(linInput), output.(linOutput)
			switch in.Op {
			case "create":
				switch {
				case out.Ambiguous && s == "":
					return []any{"", in.Value}
				case out.Ambiguous:
					return []any{s}
				case out.OK && s == "":
					return []any{in.Value}
				case !out.OK && s != "":
					return []any{s}
				}
			case "get":
				if out.OK && s == out.Value || !out.OK && s == "" {
					return []any{s}
				}
			case "delete":
				switch {
				case out.Ambiguous:
					return []any{s, ""}
				case out.OK && s != "":
					return []any{""}
				case !out.OK && s == "":
					return []any{s}
				}
			}
			return nil
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(linInput), output.(linOutput)
			return fmt.Sprintf("%s(%s,%.8s) -> ok=%v %.8s amb=%v", in.Op, in.Key, in.Value, out.OK, out.Value, out.Ambiguous)
		},
	}
	return nd.ToModel()
}

// TestLinearizability: 8 clients create, read and delete keys over the key
// API on all three nodes while the leader is killed and restarted; the
// history must be linearizable.
func TestLinearizability(t *testing.T) {
	c := newCluster(t, 1)
	n1 := c.nodes[0]
	apiKey := c.apiKey
	c.add("node2", n1)
	c.add("node3", n1)
	client := newAPIClient(t, filepath.Join(n1.dir, "ca.pem"), apiKey, 16)

	const clients = 8
	const keys = 6
	runFor := 4 * time.Second
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), runFor)
	defer cancel()

	var mu sync.Mutex
	var history []porcupine.Operation
	var wg sync.WaitGroup
	for ci := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(ci), 42))
			seq := 0
			for ctx.Err() == nil {
				node := c.nodes[rng.IntN(len(c.nodes))]
				key := fmt.Sprintf("lin-%d", rng.IntN(keys))
				url := "https://" + node.api + "/v1/keys/" + key
				in := linInput{Key: key}
				var out linOutput
				call := time.Since(start).Nanoseconds()
				var oc outcome
				rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
				switch p := rng.IntN(10); {
				case p < 4:
					in.Op = "create"
					seq++
					mat := make([]byte, 32)
					binary.BigEndian.PutUint64(mat, uint64(ci)<<32|uint64(seq))
					in.Value = fmt.Sprintf("%x", mat)
					var cr nodeagent.CreateResult
					_, oc = client.do(rctx, http.MethodPut, url, map[string]any{"material": mat}, &cr)
					out.OK = cr.Created
				case p < 8:
					in.Op = "get"
					var ki nodeagent.KeyInfo
					var status int
					status, oc = client.do(rctx, http.MethodGet, url, nil, &ki)
					if oc == definite && status == http.StatusOK {
						out.OK, out.Value = true, fmt.Sprintf("%x", ki.Material)
					}
					if oc == ambiguous {
						oc = notSent // a failed read has no effect: drop it
					}
				default:
					in.Op = "delete"
					var status int
					status, oc = client.do(rctx, http.MethodDelete, url, nil, nil)
					out.OK = status == http.StatusOK
				}
				rcancel()
				ret := time.Since(start).Nanoseconds()
				if oc == notSent {
					continue
				}
				if oc == ambiguous {
					out = linOutput{Ambiguous: true}
					ret = math.MaxInt64
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: ci, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		}()
	}

	// Fault: kill -9 the leader, then restart it.
	waitFor(t, runFor, "first operations", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(history) < 50 {
			return errors.New("not yet")
		}
		return nil
	})
	l := c.leader(5 * time.Second)
	l.kill()
	t.Logf("killed leader %s at %s", l.id, time.Since(start).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "new leader", func() error {
		for _, n := range c.nodes {
			if n != l && n.status().State == "leader" {
				return nil
			}
		}
		return errors.New("none")
	})
	l.start()
	t.Logf("restarted %s at %s", l.id, time.Since(start).Round(time.Millisecond))
	wg.Wait()

	amb := 0
	for _, op := range history {
		if op.Output.(linOutput).Ambiguous {
			amb++
		}
	}
	t.Logf("history: %d operations (%d ambiguous) in %s", len(history), amb, time.Since(start).Round(time.Millisecond))
	if len(history) < 200 {
		t.Fatalf("only %d operations recorded", len(history))
	}
	for e, n := range client.errs {
		t.Logf("%5d × %s", n, e)
	}
	res, info := porcupine.CheckOperationsVerbose(kvModel(), history, 20*time.Second)
	switch res {
	case porcupine.Illegal:
		f := filepath.Join(t.TempDir(), "lin.html")
		if err := porcupine.VisualizePath(kvModel(), info, f); err == nil {
			t.Logf("visualization: %s", f)
		}
		t.Fatal("history is not linearizable")
	case porcupine.Unknown:
		t.Log("linearizability check timed out (no violation found)")
	}
}
