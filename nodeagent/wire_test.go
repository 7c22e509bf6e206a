package nodeagent

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/nodeagent/token"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files under testdata/")

// TestCommandWireGolden pins the raft log format: the bytes of one command
// of every opcode, the FSM's answer to each, and the state after them all.
// Log entries outlive binaries (a follower replays a leader's entries, a
// restart replays its own log), so a change here breaks clusters in the
// middle of an upgrade. Rewrite with -update only for a deliberate format
// change.
func TestCommandWireGolden(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	meta := emptyMeta()
	meta.ClusterID, meta.Founder, meta.Created, meta.CMKID = "c1", "n1", at, "cmk1"
	meta.Nodes["n1"] = NodeInfo{ID: "n1", RaftAddr: "127.0.0.1:1", APIAddr: "127.0.0.1:2", CertSHA256: "aa"}
	steps := []struct {
		name string
		cmd  []byte
	}{
		{"init", must(encodeJSONCmd(opInit, initCmd{Meta: meta, APIKey: token.APIKeyRecord{ID: "k1", Created: at}}))},
		{"keys create", must(encodeKeysCmd(opKeysCreate, testKeys(3, "a")))},
		{"keys create again", must(encodeKeysCmd(opKeysCreate, testKeys(2, "a")))},
		{"keys delete", must(encodeJSONCmd(opKeysDelete, []string{"a000001", "zz"}))},
		{"token add", must(encodeJSONCmd(opTokenAdd, token.Record{ID: "t1", Created: at, Expires: at.Add(time.Hour)}))},
		{"token use", must(encodeJSONCmd(opTokenUse, tokenUseCmd{ID: "t1", UsedBy: "n2", Now: at.Add(time.Minute)}))},
		{"token use by another", must(encodeJSONCmd(opTokenUse, tokenUseCmd{ID: "t1", UsedBy: "n3", Now: at.Add(2 * time.Minute)}))},
		{"node put", must(encodeJSONCmd(opNodePut, NodeInfo{ID: "n2", RaftAddr: "127.0.0.1:3", APIAddr: "127.0.0.1:4", CertSHA256: "bb"}))},
		{"change begin", must(encodeJSONCmd(opChangeBegin, MembershipChange{Op: "remove", NodeID: "n2", Started: at, Term: 3}))},
		{"change begin other", must(encodeJSONCmd(opChangeBegin, MembershipChange{Op: "remove", NodeID: "n1", Started: at, Term: 3}))},
		{"node delete", must(encodeJSONCmd(opNodeDelete, "n2"))},
		{"change end", must(encodeJSONCmd(opChangeEnd, struct{}{}))},
		{"backup recorded", must(encodeJSONCmd(opBackupRecorded, BackupInfo{ID: "b1", Time: at, Node: "n1", Keys: 2}))},
		{"restore refused (keys present)", must(encodeRestoreCmd(restoreHeader{NewCMKID: "cmk2", At: at, From: "b1"}, testKeys(1, "r")))},
		{"unknown opcode", []byte{42, '{', '}'}},
	}
	f := NewFSM(nil)
	var out strings.Builder
	for i, s := range steps {
		res := applyAt(f, uint64(i+1), s.cmd)
		if err, ok := res.(error); ok {
			res = "error: " + err.Error()
		}
		fmt.Fprintf(&out, "%s\n  cmd %s\n  res %v\n", s.name, hex.EncodeToString(s.cmd), res)
	}
	m, keys := f.State()
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&out, "index %d\nkeys %d\nmeta %s\n", f.Index(), len(keys), mb)
	for _, k := range f.Keys() {
		fmt.Fprintf(&out, "key %s %s %s %s %d %x\n", k.ID, k.Name, k.Type, k.Group, k.Created, k.Sealed)
	}
	golden := filepath.Join("testdata", "commands.golden")
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(out.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := out.String(); got != string(want) {
		t.Fatalf("raft command format or FSM answers changed (diff against %s):\n%s", golden, got)
	}
}
