package runlog_test

import (
	"context"
	"strings"
	"testing"

	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

// TestFoldApprovals: each request gathers the grants and refusals that name
// it; one that names no request of its step is a problem of the view.
func TestFoldApprovals(t *testing.T) {
	alice := state.Person{Actor: state.Actor{User: "alice", Host: "vm", Key: "SHA256:a"}, Principal: "alice@example.org"}
	bob := state.Person{Actor: state.Actor{User: "bob", Host: "jump", Key: "SHA256:b"}, Principal: "bob@example.org"}
	req := state.ApprovalRequested{Title: "Wipe", Approvals: 1, Operator: alice,
		Commands: []state.ApprovalCommand{{Target: "node1", Command: "wipe"}}}
	db, id := record(t, []ev{
		{typ: state.EvApprovalRequested, step: "wipe", payload: req},                                                                          // seq 2
		{typ: state.EvApprovalRefused, step: "wipe", payload: state.ApprovalRefused{RequestSeq: 2, Approver: alice, Code: state.RefusedSelf}}, // 3
		{typ: state.EvRunFinished, payload: state.RunFinished{Status: state.StatusInterrupted}},                                               // 4
		{typ: state.EvRunResumed, payload: state.RunResumed{User: "alice"}},                                                                   // 5
		{typ: state.EvApprovalRequested, step: "wipe", payload: req},                                                                          // 6
		{typ: state.EvApprovalRefused, step: "wipe", payload: state.ApprovalRefused{RequestSeq: 2, Approver: bob, Code: state.RefusedOther}},  // 7: names the old request
		{typ: state.EvApprovalGranted, step: "wipe", payload: state.ApprovalGranted{RequestSeq: 6, Approver: bob, Count: 1, Needed: 1}},       // 8
		{typ: state.EvApprovalGranted, step: "other", payload: state.ApprovalGranted{RequestSeq: 6, Approver: bob}},                           // 9: wrong step
	})
	evs, err := db.Events(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	v := runlog.Fold(evs)
	if len(v.Approvals) != 2 {
		t.Fatalf("%d requests", len(v.Approvals))
	}
	first, second := v.Approvals[0], v.Approvals[1]
	if first.Seq != 2 || len(first.Refused) != 2 || len(first.Granted) != 0 || first.Request.Operator != alice {
		t.Fatalf("first request: %+v", first)
	}
	if second.Seq != 6 || len(second.Granted) != 1 || second.Granted[0].Approver != bob || len(second.Refused) != 0 {
		t.Fatalf("second request: %+v", second)
	}
	if len(v.Problems) != 1 || v.Problems[0].Seq != 9 || !strings.Contains(v.Problems[0].Reason, "request #6") {
		t.Fatalf("problems: %+v", v.Problems)
	}
	// The view's slices are its own: a later Apply does not change them.
	f := runlog.NewFolder()
	for _, e := range evs[:8] {
		f.Apply(e)
	}
	snap := f.View()
	f.Apply(evs[7])
	if len(snap.Approvals[1].Granted) != 1 {
		t.Fatal("a snapshot changed after Apply")
	}
}
