package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drbook/drbook/nodeagent"
)

// BenchmarkWriteThroughput3Nodes: 64 concurrent clients create keys over
// the HTTPS key API on the leader of a three-node cluster.
func BenchmarkWriteThroughput3Nodes(b *testing.B) {
	c := newCluster(b, 3)
	l := c.leader(10 * time.Second)
	client := newAPIClient(b, filepath.Join(l.dir, "ca.pem"), c.apiKey, 64)
	url := "https://" + l.api + "/v1/keys"
	workers := 64
	if w, err := strconv.Atoi(os.Getenv("DRBOOK_BENCH_WORKERS")); err == nil && w > 0 {
		workers = w
	}
	var next atomic.Int64
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				var res []nodeagent.CreateResult
				body := map[string]any{"keys": []nodeagent.KeySpec{{Group: "bench"}}}
				st, oc := client.do(context.Background(), http.MethodPost, url, body, &res)
				if st != http.StatusOK || oc != definite || len(res) != 1 || !res[0].Created {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d creates failed", f)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "creates/s")
}

// loaded returns a one-node cluster holding n keys.
func loaded(b *testing.B, n int) *node {
	b.Helper()
	c := newCluster(b, 1)
	var lr nodeagent.LoadResult
	c.nodes[0].mustJSON(&lr, "keys", "load", "--count", strconv.Itoa(n))
	if lr.Keys != n {
		b.Fatalf("loaded %d keys", lr.Keys)
	}
	return c.nodes[0]
}

// BenchmarkBackup100k: `backup create` of 100,000 keys (CLI round trip,
// argon2id KDF, compression, encryption, fsync).
func BenchmarkBackup100k(b *testing.B) {
	n := loaded(b, 100_000)
	pass := writeSecretB(b, "bench passphrase")
	dir := b.TempDir()
	var size int64
	b.ResetTimer()
	for i := range b.N {
		var res nodeagent.BackupResult
		n.mustJSON(&res, "backup", "create", "--out", filepath.Join(dir, fmt.Sprintf("b%d.drbk", i)), "--key-file", pass)
		size = res.Bytes
	}
	b.ReportMetric(float64(size)/(1<<20), "MB")
}

// BenchmarkRestore100k: `restore` of a 100,000-key backup onto a freshly
// bootstrapped node (verification, decryption, one raft entry).
func BenchmarkRestore100k(b *testing.B) {
	src := loaded(b, 100_000)
	pass := writeSecretB(b, "bench passphrase")
	file := filepath.Join(b.TempDir(), "src.drbk")
	var bres nodeagent.BackupResult
	src.mustJSON(&bres, "backup", "create", "--out", file, "--key-file", pass)
	src.kill()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		n := newNode(b, fmt.Sprintf("restore%d", i))
		var br nodeagent.BootstrapResult
		n.mustJSON(&br, "cluster", "create")
		b.StartTimer()
		var rr nodeagent.RestoreResult
		n.mustJSON(&rr, "restore", file, "--key-file", pass)
		b.StopTimer()
		if rr.Keys != 100_000 {
			b.Fatalf("restored %d keys", rr.Keys)
		}
		n.kill()
		b.StartTimer()
	}
}

// BenchmarkAgentRSS100k reports the resident memory of an agent holding
// 100,000 keys (VmRSS from /proc).
func BenchmarkAgentRSS100k(b *testing.B) {
	n := loaded(b, 100_000)
	var rss float64
	b.ResetTimer()
	for range b.N {
		var cr nodeagent.CountResult
		n.mustJSON(&cr, "keys", "count")
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				rss = kb / 1024
			}
		}
	}
	b.ReportMetric(rss, "RSS-MB")
}

func writeSecretB(b *testing.B, s string) string {
	b.Helper()
	f := filepath.Join(b.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
		b.Fatal(err)
	}
	return f
}
