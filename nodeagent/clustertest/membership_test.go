package clustertest

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/drbook/drbook/nodeagent"
)

// TestRemoveThenReset: reset is refused while the node is a member,
// accepted after its removal, and deletes the data directory; repeated
// remove is a no-op.
func TestRemoveThenReset(t *testing.T) {
	c := newCluster(t, 3)
	l := c.leader(10 * time.Second)
	var lr nodeagent.LoadResult
	l.mustJSON(&lr, "keys", "load", "--count", "500")
	victim := c.nodes[2]
	if victim == l {
		victim = c.nodes[1]
	}
	before := l.manifest(false)

	victim.expectCode(nodeagent.ExitRefused, "reset-non-member", nil, "cluster", "reset", "--delete-data")
	if _, err := os.Stat(victim.dir); err != nil {
		t.Fatalf("data dir touched by refused reset: %v", err)
	}

	var rr nodeagent.RemoveResult
	l.mustJSON(&rr, "cluster", "remove", "--node", victim.id)
	if !rr.Changed || rr.Voters != 2 {
		t.Fatalf("remove: %+v", rr)
	}
	l.mustJSON(&rr, "cluster", "remove", "--node", victim.id)
	if rr.Changed {
		t.Fatalf("second remove changed something: %+v", rr)
	}

	var res nodeagent.ResetResult
	waitFor(t, 10*time.Second, "reset accepted after removal", func() error {
		r := victim.run(nil, "cluster", "reset", "--delete-data")
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return nil
	})
	waitFor(t, 10*time.Second, "agent exits after reset", func() error {
		if victim.running() {
			return errors.New("still running")
		}
		return nil
	})
	if _, err := os.Stat(victim.dir); !os.IsNotExist(err) {
		t.Fatalf("data dir still there after reset: %v", err)
	}
	// Resuming the finished reset (agent gone, no data dir) is a no-op.
	victim.mustJSON(&res, "cluster", "reset", "--delete-data")
	if res.Changed {
		t.Fatalf("resumed reset changed something: %+v", res)
	}
	// Reset of a clean running node is a no-op.
	victim.start()
	victim.mustJSON(&res, "cluster", "reset", "--delete-data")
	if res.Changed {
		t.Fatalf("reset of a clean node changed something: %+v", res)
	}

	st := l.status()
	if st.Voters != 2 || st.Healthy != 2 || len(st.Members) != 2 {
		t.Fatalf("status after removal: %+v", st)
	}
	if after := l.manifest(false); after.Digest != before.Digest {
		t.Fatal("keys changed by removal")
	}

	// Removing the leader itself: leadership moves first.
	var other *node
	for _, n := range c.nodes {
		if n != l && n != victim {
			other = n
		}
	}
	l.mustJSON(&rr, "cluster", "remove", "--node", l.id, "--force")
	if !rr.Changed || rr.Voters != 1 {
		t.Fatalf("remove leader: %+v", rr)
	}
	st = other.status()
	if st.State != "leader" || st.Voters != 1 || st.MembershipChange != nil {
		t.Fatalf("status after removing the old leader: %+v", st)
	}
	waitFor(t, 10*time.Second, "old leader knows it was removed", func() error {
		if s := l.status(); !s.Removed {
			return errors.New("not marked removed")
		}
		return nil
	})
	if after := other.manifest(false); after.Digest != before.Digest {
		t.Fatal("keys changed by leader removal")
	}
}

// TestQuorumLossForceNew: with two of three nodes killed writes fail with
// "unavailable"; force-new on the survivor gives a one-node cluster with
// every committed key, which scales back to three.
func TestQuorumLossForceNew(t *testing.T) {
	c := newCluster(t, 3)
	l := c.leader(10 * time.Second)
	var lr nodeagent.LoadResult
	l.mustJSON(&lr, "keys", "load", "--count", "2000")
	before := l.manifest(false)

	survivor := c.nodes[0]
	if survivor == l {
		survivor = c.nodes[1]
	}
	// force-new is refused while there is a leader.
	survivor.expectCode(nodeagent.ExitRefused, "force-new-quorum-lost", nil, "cluster", "force-new")
	var others []*node
	for _, n := range c.nodes {
		if n != survivor {
			others = append(others, n)
		}
	}
	// With one voter down, removing a healthy one would lose quorum.
	down, healthy := others[0], others[1]
	if down == l {
		down, healthy = healthy, down
	}
	down.kill()
	l.expectCode(nodeagent.ExitRefused, "remove-keeps-quorum", nil, "cluster", "remove", "--node", survivor.id)
	if st := l.status(); st.Voters != 3 {
		t.Fatalf("refused removal changed voters: %d", st.Voters)
	}
	healthy.kill()
	r := survivor.expectCode(nodeagent.ExitUnavailable, "quorum lost", nil, "--timeout", "5s", "keys", "create", "--name", "lost")
	t.Logf("write without quorum: %s", r.stderr)
	// Without quorum: stale reads work, and a backup is still written from
	// local state (marked inconsistent, not recorded).
	var cnt nodeagent.CountResult
	survivor.mustJSON(&cnt, "keys", "count", "--stale")
	if cnt.Keys != before.Count {
		t.Fatalf("stale count %d, want %d", cnt.Keys, before.Count)
	}
	var bres nodeagent.BackupResult
	survivor.mustJSON(&bres, "backup", "create", "--key-file", writeSecret(t, "pw"))
	if bres.Consistent || bres.Recorded || bres.Keys != before.Count {
		t.Fatalf("backup without quorum: %+v", bres)
	}

	var fr nodeagent.ForceNewResult
	waitFor(t, 10*time.Second, "force-new accepted", func() error {
		return survivor.tryJSON(&fr, "cluster", "force-new")
	})
	if !fr.Changed || fr.Keys != before.Count {
		t.Fatalf("force-new: %+v (want %d keys)", fr, before.Count)
	}
	if after := survivor.manifest(false); after.Digest != before.Digest {
		t.Fatalf("force-new lost keys: %+v", nodeagent.CompareManifests(before, after))
	}
	st := survivor.status()
	if st.State != "leader" || st.Voters != 1 || len(st.Members) != 1 {
		t.Fatalf("status after force-new: %+v", st)
	}
	survivor.mustJSON(&fr, "cluster", "force-new")
	if fr.Changed {
		t.Fatal("second force-new changed something")
	}
	var cr []nodeagent.CreateResult
	survivor.mustJSON(&cr, "keys", "create", "--name", "after-force-new")

	// Scale back to three with fresh nodes.
	c2 := &cluster{t: t, nodes: []*node{survivor}}
	c2.add("node4", survivor)
	n5 := c2.add("node5", survivor)
	want := survivor.manifest(false)
	if want.Count != before.Count+1 {
		t.Fatalf("count %d after one more create", want.Count)
	}
	if got := n5.manifest(false); got.Digest != want.Digest {
		t.Fatal("new member has different keys")
	}
	st = n5.status()
	if st.Voters != 3 || st.Healthy != 3 {
		t.Fatalf("status after scale-out: %+v", st)
	}
}

// TestReplaceFailedNode is the single-node-failure runbook: a node dies,
// is removed from the cluster while down, comes back with stale state, is
// reset (its peers confirm it is no longer a member), and rejoins under the
// same id with a fresh data directory.
func TestReplaceFailedNode(t *testing.T) {
	c := newCluster(t, 3)
	l := c.leader(10 * time.Second)
	var lr nodeagent.LoadResult
	l.mustJSON(&lr, "keys", "load", "--count", "1000")
	var failed *node
	for _, n := range c.nodes {
		if n != l {
			failed = n
		}
	}
	failed.kill()

	// A stranger cannot take the failed node's id while it is a member.
	impostor := newNode(t, failed.id)
	tf := token(t, l, "")
	impostor.expectCode(nodeagent.ExitRefused, "join-unique-node-id", nil, "cluster", "join", "--peer", l.api, "--token-file", tf)
	impostor.kill()

	var rr nodeagent.RemoveResult
	l.mustJSON(&rr, "cluster", "remove", "--node", failed.id)
	if !rr.Changed || rr.Voters != 2 {
		t.Fatalf("remove dead node: %+v", rr)
	}
	before := l.manifest(false)

	failed.start() // stale state: still believes it is a member
	waitFor(t, 15*time.Second, "reset of the removed node", func() error {
		r := failed.run(nil, "cluster", "reset", "--delete-data")
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return nil
	})
	waitFor(t, 10*time.Second, "agent exit after reset", func() error {
		if failed.running() {
			return errors.New("still running")
		}
		return nil
	})
	if _, err := os.Stat(failed.dir); !os.IsNotExist(err) {
		t.Fatalf("data dir survived reset: %v", err)
	}
	failed.start()
	var jr nodeagent.JoinResult
	failed.mustJSON(&jr, "cluster", "join", "--peer", l.api, "--token-file", tf)
	if !jr.Changed || jr.Suffrage != "voter" {
		t.Fatalf("rejoin: %+v", jr)
	}
	if got := failed.manifest(false); got.Digest != before.Digest {
		t.Fatal("rejoined node has different keys")
	}
	if st := l.status(); st.Voters != 3 || st.Healthy != 3 {
		t.Fatalf("status after rejoin: %+v", st)
	}
}
