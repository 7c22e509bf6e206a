package clustertest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/drbook/drbook/nodeagent"
)

// TestFailover: three nodes, 10,000 keys, kill -9 the leader: a new leader
// within 5 s and every acknowledged key readable; the killed node restarts
// and catches up.
func TestFailover(t *testing.T) {
	c := newCluster(t, 3)
	l := c.leader(10 * time.Second)
	var lr nodeagent.LoadResult
	c.nodes[1].mustJSON(&lr, "keys", "load", "--count", "10000")
	if lr.Created != 10000 || lr.Keys != 10000 {
		t.Fatalf("load: %+v", lr)
	}
	before := l.manifest(false)
	if before.Count != 10000 {
		t.Fatalf("manifest count %d", before.Count)
	}
	st := l.status()
	if st.Voters != 3 || st.Healthy != 3 {
		t.Fatalf("status before kill: %+v", st)
	}

	killed := time.Now()
	l.kill()
	var nl *node
	waitFor(t, 5*time.Second, "a new leader after kill -9", func() error {
		for _, n := range c.nodes {
			if n == l {
				continue
			}
			var s nodeagent.Status
			if err := n.tryJSON(&s, "status"); err != nil {
				return err
			}
			if s.State == "leader" {
				nl = n
				return nil
			}
		}
		return errors.New("no leader yet")
	})
	t.Logf("new leader %s after %s", nl.id, time.Since(killed).Round(time.Millisecond))

	for _, n := range c.nodes {
		if n == l {
			continue
		}
		after := n.manifest(false)
		if after.Digest != before.Digest || after.Count != before.Count {
			res := nodeagent.CompareManifests(before, after)
			t.Fatalf("node %s lost keys after failover: %d missing, %d extra, %d changed", n.id, len(res.Missing), len(res.Extra), len(res.Changed))
		}
	}
	// A write after failover, then the old leader restarts and catches up.
	var cr []nodeagent.CreateResult
	nl.mustJSON(&cr, "keys", "create", "--name", "after-failover")
	l.start()
	want := nl.manifest(false)
	waitFor(t, 15*time.Second, "restarted node catches up", func() error {
		got := l.manifest(true)
		if got.Digest != want.Digest {
			return fmt.Errorf("restarted node has %d keys, want %d", got.Count, want.Count)
		}
		return nil
	})
	if st := nl.status(); st.Voters != 3 {
		t.Fatalf("voters %d after restart", st.Voters)
	}
}
