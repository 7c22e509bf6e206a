package state

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestApprovalMessageRoundTrip(t *testing.T) {
	req := ApprovalRequested{HeadSeq: 41, HeadHash: strings.Repeat("c", 64),
		Commands: []ApprovalCommand{{Target: "node1", Command: "rm -rf /var/lib/x", Params: `{"command":"rm -rf /var/lib/x"}`}}}
	req.CommandsSHA256 = CommandsDigest(req.Commands)
	msg := ApprovalMessage("r20261129-010203-abcd", "wipe", 42, req)
	got, err := ParseApprovalMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := SignedApproval{RunID: "r20261129-010203-abcd", StepID: "wipe", RequestSeq: 42, HeadSeq: 41, HeadHash: req.HeadHash, CommandsSHA256: req.CommandsSHA256}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if !bytes.HasPrefix(msg, []byte("drbook approval v1\n")) || !bytes.HasSuffix(msg, []byte("\n")) {
		t.Fatalf("message %q", msg)
	}
}

func TestParseApprovalMessageRejects(t *testing.T) {
	good := "drbook approval v1\nrun r1\nstep s\nrequest 3\nhead 2 abc\ncommands-sha256 def\n"
	for _, tc := range []struct{ name, msg string }{
		{"empty", ""},
		{"other magic", strings.Replace(good, "v1", "v2", 1)},
		{"missing line", strings.Replace(good, "step s\n", "", 1)},
		{"extra line", good + "more\n"},
		{"bad request", strings.Replace(good, "request 3", "request three", 1)},
		{"bad head", strings.Replace(good, "head 2 abc", "head x abc", 1)},
		{"renamed key", strings.Replace(good, "run r1", "ran r1", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseApprovalMessage([]byte(tc.msg)); err == nil {
				t.Fatalf("accepted %q", tc.msg)
			}
		})
	}
	if _, err := ParseApprovalMessage([]byte(good)); err != nil {
		t.Fatal(err)
	}
}

// TestCommandsDigestSeparates: lists that would read the same if joined
// naively give different digests.
func TestCommandsDigestSeparates(t *testing.T) {
	lists := [][]ApprovalCommand{
		{{Target: "n1", Command: "a\ntarget n2\ncommand 1\nb"}},
		{{Target: "n1", Command: "a"}, {Target: "n2", Command: "b"}},
		{{Target: "n1", Command: "a"}},
		{{Target: "n1", Command: "a", Params: `{"env":{"X":"1"}}`}},
		{{Target: "n1", Command: "a", Params: `{"env":{"X":"2"}}`}},
		{{Target: "n2", Command: "a"}},
		nil,
	}
	seen := map[string]int{}
	for i, l := range lists {
		d := CommandsDigest(l)
		if j, dup := seen[d]; dup {
			t.Fatalf("lists %d and %d share digest %s", j, i, d)
		}
		seen[d] = i
		if CommandsDigest(l) != d {
			t.Fatal("digest is not stable")
		}
	}
}

func TestApprovalSubmissions(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	r := newRun(t, db)
	if _, err := db.SubmitApproval(ctx, ApprovalSubmission{RunID: "r-none", StepID: "s", Message: []byte("m"), Signature: []byte("s")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown run: %v", err)
	}
	if _, err := db.SubmitApproval(ctx, ApprovalSubmission{RunID: r.ID, StepID: "s", Message: make([]byte, maxSubmission+1), Signature: []byte("s")}); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("too large: %v", err)
	}
	var ids []int64
	for _, step := range []string{"wipe", "wipe", "other"} {
		id, err := db.SubmitApproval(ctx, ApprovalSubmission{RunID: r.ID, StepID: step, Message: []byte("msg " + step), Signature: []byte("sig"), User: "bob", Host: "jump"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	pending, err := db.ApprovalSubmissions(ctx, r.ID, "wipe", true)
	if err != nil || len(pending) != 2 || pending[0].ID != ids[0] || pending[0].User != "bob" || string(pending[1].Message) != "msg wipe" || pending[0].SubmittedAt.IsZero() {
		t.Fatalf("pending: %+v %v", pending, err)
	}
	if err := db.MarkApprovalDone(ctx, ids[0], 7); err != nil {
		t.Fatal(err)
	}
	pending, _ = db.ApprovalSubmissions(ctx, r.ID, "wipe", true)
	all, _ := db.ApprovalSubmissions(ctx, r.ID, "wipe", false)
	if len(pending) != 1 || pending[0].ID != ids[1] || len(all) != 2 {
		t.Fatalf("after marking: pending %+v all %+v", pending, all)
	}
	s, err := db.ApprovalSubmission(ctx, ids[0])
	if err != nil || s.DoneSeq != 7 {
		t.Fatalf("submission: %+v %v", s, err)
	}
	if _, err := db.ApprovalSubmission(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown submission: %v", err)
	}
	// A row written past the bounds by someone who can write the database
	// is never read, and one read returns at most maxPendingSubmissions.
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO approval_submissions (run_id, step_id, message, signature, user, uid, host, submitted_at)
		VALUES (?, 'flood', zeroblob(?), 's', 'bob', 0, 'jump', ?)`, r.ID, maxSubmission+1, formatTime(time.Now())); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < maxPendingSubmissions+5; i++ {
		if _, err := db.SubmitApproval(ctx, ApprovalSubmission{RunID: r.ID, StepID: "flood", Message: []byte("m"), Signature: []byte("s"), User: "bob", Host: "jump"}); err != nil {
			t.Fatal(err)
		}
	}
	flood, err := db.ApprovalSubmissions(ctx, r.ID, "flood", true)
	if err != nil || len(flood) != maxPendingSubmissions {
		t.Fatalf("flood: %d rows, %v; want %d", len(flood), err, maxPendingSubmissions)
	}
	for _, f := range flood {
		if len(f.Message) > maxSubmission {
			t.Fatalf("an oversized submission was read (%d bytes)", len(f.Message))
		}
	}
	// Submissions never touch the chain.
	if rep, err := db.Verify(ctx, r.ID); err != nil || rep.Events != 1 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// FuzzParseApprovalMessage: any bytes parse or fail without panicking, and
// what parses is printed back exactly by ApprovalMessage.
func FuzzParseApprovalMessage(f *testing.F) {
	f.Add([]byte("drbook approval v1\nrun r1\nstep s\nrequest 3\nhead 2 abc\ncommands-sha256 def\n"))
	f.Add([]byte("drbook approval v1\nrun \nstep \nrequest -1\nhead 0 \ncommands-sha256 \n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, err := ParseApprovalMessage(msg)
		if err != nil {
			return
		}
		back := ApprovalMessage(s.RunID, s.StepID, s.RequestSeq, ApprovalRequested{HeadSeq: s.HeadSeq, HeadHash: s.HeadHash, CommandsSHA256: s.CommandsSHA256})
		again, err := ParseApprovalMessage(back)
		if err != nil || again != s {
			t.Fatalf("round trip of %q: %+v %v, want %+v", msg, again, err, s)
		}
	})
}

func TestApprovalWho(t *testing.T) {
	for _, tc := range []struct {
		n     int
		names []string
		want  string
	}{
		{1, nil, "another person in the allowed-signers file"},
		{2, nil, "2 other persons in the allowed-signers file"},
		{1, []string{"a@x"}, "a@x"},
		{1, []string{"a@x", "b@x"}, "one of a@x, b@x"},
		{2, []string{"a@x", "b@x"}, "all of a@x, b@x"},
		{2, []string{"a@x", "b@x", "c@x"}, "2 of a@x, b@x, c@x"},
	} {
		if got := (ApprovalRequested{Approvals: tc.n, Approvers: tc.names}).Who(); got != tc.want {
			t.Errorf("%d of %v: %q, want %q", tc.n, tc.names, got, tc.want)
		}
	}
}
