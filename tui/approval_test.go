package tui

import (
	"fmt"
	"strings"
	"testing"

	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
)

func approvalWait() engine.ApprovalWait {
	req := state.ApprovalRequested{Title: "Wipe the scratch marker on the seed", Approvals: 2, Approvers: []string{"bob@example.org", "carol@example.org"},
		Commands: []state.ApprovalCommand{{Target: "node2", Command: `test -n "$PASS" && echo "wiped marker drill on node2"`}},
		Operator: state.Person{Actor: state.Actor{User: "alice", Host: "jump", Key: "SHA256:aaaa"}, Principal: "alice@example.org"}}
	req.CommandsSHA256 = state.CommandsDigest(req.Commands)
	return engine.ApprovalWait{RunID: "r20261121-030405-ab12", StepID: "wipe", Title: req.Title, RequestSeq: 12, Request: req,
		Command: engine.ApproveCommand("r20261121-030405-ab12", "wipe")}
}

// TestTUIApprovalGolden: the approval box says who must approve what, the
// exact commands, the command to run, the approvals so far and the last
// refusal, within 80x24 and 120x40; esc once warns, esc twice aborts; the
// box closes when the wait ends.
func TestTUIApprovalGolden(t *testing.T) {
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			m := runModel(t, runningEvents()[:12])
			d := drive(m)
			w := approvalWait()
			reply := make(chan approvalReply, 1)
			rec := func(seq int64, typ state.EventType, p any) EventMsg {
				ev, err := state.NewEvent(w.RunID, typ, p)
				if err != nil {
					t.Fatal(err)
				}
				ev.Seq, ev.StepID, ev.Time = seq, "wipe", at(int(seq)*10)
				return EventMsg{Event: runlog.Recorded{Event: ev}}
			}
			d.send(batchMsg{
				rec(12, state.EvApprovalRequested, w.Request),
				EventMsg{Event: runlog.Question{Kind: state.WaitApproval, StepID: "wipe", Prompt: "APPROVAL: wipe needs 2 approval(s) by another person: " + w.Command, Time: at(320)}},
				approvalMsg{wait: w, reply: reply},
			})
			d.send(batchMsg{
				rec(13, state.EvApprovalRefused, state.ApprovalRefused{RequestSeq: 12, Approver: state.Person{Actor: state.Actor{User: "alice", Host: "jump"}, Principal: "alice@example.org"},
					Code: state.RefusedSelf, Reason: "self-approval: key SHA256:aaaa is the operator's own signing key"}),
				rec(14, state.EvApprovalGranted, state.ApprovalGranted{RequestSeq: 12, Approver: state.Person{Actor: state.Actor{User: "bob", Host: "jump", Key: "SHA256:bbbb"}, Principal: "bob@example.org"}, Count: 1, Needed: 2}),
			})
			got := sized(t, d, sz.w, sz.h)
			for _, want := range []string{"APPROVAL NEEDED", "all of bob@example.org, carol@example.org", "(alice@example.org)",
				"on node2:", `│ test -n "$PASS"`, "drbook approve r20261121-030405-ab12 wipe", "1 of 2 approvals · bob@example.org",
				"refused: alice@example.org", "awaiting approval", "esc esc abort run"} {
				if !strings.Contains(got, want) {
					t.Errorf("approval screen lacks %q:\n%s", want, got)
				}
			}
			golden(t, fmt.Sprintf("approval_%dx%d", sz.w, sz.h), got)
			d.send(press("esc"))
			if !strings.Contains(frame(m), "press esc again") {
				t.Errorf("one esc does not warn:\n%s", frame(m))
			}
			d.send(press("x")) // any other key takes the warning back
			d.send(press("esc"))
			select {
			case r := <-reply:
				t.Fatalf("one esc answered the engine: %+v", r)
			default:
			}
			d.send(press("esc"))
			select {
			case r := <-reply:
				if !r.abort || r.by != "alice" {
					t.Errorf("reply %+v, want abort by alice", r)
				}
			default:
				t.Fatal("esc esc did not answer the engine")
			}
			if m.run.Prompting() {
				t.Error("the approval box stayed open")
			}
		})
	}
}

// TestTUIApprovalClosesWhenApproved: the box goes away when the engine's
// wait ends (the approvals came), without any key.
func TestTUIApprovalClosesWhenApproved(t *testing.T) {
	m := runModel(t, runningEvents()[:12])
	d := drive(m)
	w := approvalWait()
	d.send(batchMsg{approvalMsg{wait: w, reply: make(chan approvalReply, 1)}})
	sized(t, d, 80, 24)
	if !m.run.Prompting() || !strings.Contains(frame(m), "APPROVAL NEEDED") {
		t.Fatalf("no approval box:\n%s", frame(m))
	}
	d.send(batchMsg{approvalClosedMsg{stepID: "wipe"}})
	if m.run.Prompting() || strings.Contains(frame(m), "APPROVAL NEEDED") {
		t.Fatalf("the box stayed after the wait ended:\n%s", frame(m))
	}
}
