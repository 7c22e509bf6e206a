package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDefaultPath(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/srv/xdg")
	p, err := DefaultPath()
	if err != nil || p != "/srv/xdg/drbook/drbook.db" {
		t.Fatalf("DefaultPath with XDG_DATA_HOME = %q, %v", p, err)
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/op")
	p, err = DefaultPath()
	if err != nil || p != "/home/op/.local/share/drbook/drbook.db" {
		t.Fatalf("DefaultPath without XDG_DATA_HOME = %q, %v", p, err)
	}
}

func TestCreateGetListRuns(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	r := newRun(t, db)
	if !regexp.MustCompile(`^r\d{8}-\d{6}-[0-9a-f]{4}$`).MatchString(r.ID) {
		t.Fatalf("run id %q does not have the form rYYYYMMDD-HHMMSS-xxxx", r.ID)
	}
	if r.Status != StatusRunning || r.HeadSeq != 1 || r.HeadHash == "" || r.PID != os.Getpid() {
		t.Fatalf("CreateRun filled %+v", r)
	}
	got, err := db.GetRun(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RunbookName != r.RunbookName || string(got.RunbookSource) != string(r.RunbookSource) ||
		got.Labels["ticket"] != "INC-1" || !got.CreatedAt.Equal(r.CreatedAt) || got.HeadHash != r.HeadHash {
		t.Fatalf("GetRun = %+v, want %+v", got, r)
	}
	evs, err := db.Events(ctx, r.ID)
	if err != nil || len(evs) != 1 || evs[0].Type != EvRunCreated || evs[0].PrevHash != GenesisHash(r.ID) {
		t.Fatalf("Events after CreateRun = %+v, %v", evs, err)
	}
	var rc RunCreated
	if err := evs[0].Decode(&rc); err != nil || rc.RunbookName != r.RunbookName || rc.PID != os.Getpid() {
		t.Fatalf("run.created payload = %+v, %v", rc, err)
	}

	// Ids with a shared prefix, created in a known order.
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	mk := func(id, name string, at time.Time) {
		t.Helper()
		x := Run{ID: id, RunbookName: name, CreatedAt: at, Mode: ModeInteractive}
		if err := db.CreateRun(ctx, &x); err != nil {
			t.Fatal(err)
		}
	}
	mk("r20260301-100000-aaaa", "node-loss", base)
	mk("r20260301-100000-aaab", "node-loss", base.Add(time.Second))
	mk("r20260301-100500-0001", "quorum-loss", base.Add(5*time.Minute))
	if _, err := appendE(db, "r20260301-100000-aaab", EvRunFinished, RunFinished{Status: StatusSucceeded}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		prefix  string
		want    string
		wantErr error
	}{
		{"r20260301-100500", "r20260301-100500-0001", nil},
		{"r20260301-100000-aaaa", "r20260301-100000-aaaa", nil},
		{"r20260301-100000-aa", "", ErrAmbiguous},
		{"r1999", "", ErrNotFound},
		{"", "", ErrNotFound},
	}
	for _, tc := range tests {
		got, err := db.GetRun(ctx, tc.prefix)
		if !errors.Is(err, tc.wantErr) || got.ID != tc.want {
			t.Errorf("GetRun(%q) = %q, %v; want %q, %v", tc.prefix, got.ID, err, tc.want, tc.wantErr)
		}
	}

	list := func(f RunFilter) string {
		t.Helper()
		runs, err := db.ListRuns(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		return strings.Join(ids, ",")
	}
	if got, want := list(RunFilter{RunbookName: "node-loss"}), "r20260301-100000-aaab,r20260301-100000-aaaa"; got != want {
		t.Errorf("ListRuns(name) = %s, want %s", got, want)
	}
	if got, want := list(RunFilter{Status: []Status{StatusSucceeded}}), "r20260301-100000-aaab"; got != want {
		t.Errorf("ListRuns(status) = %s, want %s", got, want)
	}
	if got, want := list(RunFilter{Limit: 2}), r.ID+",r20260301-100500-0001"; got != want {
		t.Errorf("ListRuns(limit) = %s, want %s", got, want)
	}
	dup := Run{ID: "r20260301-100000-aaaa"}
	if err := db.CreateRun(ctx, &dup); !errors.Is(err, ErrRunExists) {
		t.Errorf("CreateRun(existing id) err = %v, want ErrRunExists", err)
	}
	if _, err := db.Events(ctx, "r-none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Events(unknown) err = %v, want ErrNotFound", err)
	}
	if _, err := db.Verify(ctx, "r-none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Verify(unknown) err = %v, want ErrNotFound", err)
	}
}

func appendE(db *DB, runID string, typ EventType, p any) (Event, error) {
	ev, err := NewEvent(runID, typ, p)
	if err != nil {
		return Event{}, err
	}
	return db.Append(context.Background(), ev)
}

func TestAppendProjections(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	r := newRun(t, db)
	t0 := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)

	at := func(d time.Duration, typ EventType, step, target string, attempt int, p any) Event {
		t.Helper()
		ev, err := db.Append(ctx, Event{RunID: r.ID, Time: t0.Add(d), Type: typ, StepID: step, Target: target, Attempt: attempt, Data: mustJSON(t, p)})
		if err != nil {
			t.Fatalf("Append %s: %v", typ, err)
		}
		return ev
	}
	sealed, err := db.Seal(ctx, r.ID, "hunter2")
	if err != nil {
		t.Fatal(err)
	}
	at(0, EvAnswer, "", "", 0, Answer{Name: "seed", Value: "n1"})
	at(0, EvAnswer, "", "", 0, Answer{Name: "backup_key", Value: sealed, Secret: true})
	at(0, EvAnswer, "", "", 0, Answer{Name: "seed", Value: "n2"}) // re-answered
	st := at(time.Second, EvStepStarted, "bootstrap", "n2", 1, StepStarted{Title: "Bootstrap", Kind: "agent.bootstrap", Danger: true})
	fin := at(3*time.Second, EvStepFinished, "bootstrap", "n2", 1, StepFinished{Status: StatusSucceeded, Outputs: map[string]string{"cluster": "c1"}, Log: "ok\n", DurationMS: 2000})
	at(4*time.Second, EvStepStarted, "join", "n3", 1, StepStarted{Title: "Join"})
	at(5*time.Second, EvStepDecision, "join", "n3", 1, StepDecision{Decision: DecisionInterrupted})
	at(6*time.Second, EvStepDecision, "verify", "n2", 1, StepDecision{Decision: DecisionSkip, Reason: "checked by hand", By: "alice"})
	at(7*time.Second, EvStepFinished, "token", "n2", 1, StepFinished{Status: StatusFailed, ExitCode: 2, Error: "boom", SecretOutputs: []string{"token"}})
	at(8*time.Second, EvRunFinished, "", "", 0, RunFinished{Status: StatusFailed, MachineMS: 5000, HumanMS: 3000, Error: "token failed"})

	if fin.Seq != st.Seq+1 || fin.PrevHash != st.Hash {
		t.Fatalf("chain link: started %d/%s, finished %d prev %s", st.Seq, st.Hash, fin.Seq, fin.PrevHash)
	}
	execs, err := db.Execs(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		step, target string
		status       Status
		exit         int
		start, end   time.Duration
	}
	want := []row{
		{"bootstrap", "n2", StatusSucceeded, 0, time.Second, 3 * time.Second},
		{"join", "n3", StatusInterrupted, 0, 4 * time.Second, 5 * time.Second},
		{"verify", "n2", StatusSkipped, 0, 6 * time.Second, 6 * time.Second},
		{"token", "n2", StatusFailed, 2, 7 * time.Second, 7 * time.Second},
	}
	if len(execs) != len(want) {
		t.Fatalf("Execs = %+v, want %d rows", execs, len(want))
	}
	for i, w := range want {
		x := execs[i]
		if x.StepID != w.step || x.Target != w.target || x.Status != w.status || x.ExitCode != w.exit ||
			!x.StartedAt.Equal(t0.Add(w.start)) || !x.FinishedAt.Equal(t0.Add(w.end)) {
			t.Errorf("exec %d = %+v, want %+v", i, x, w)
		}
	}
	if execs[0].Outputs["cluster"] != "c1" || execs[0].Log != "ok\n" || execs[0].StartSeq != st.Seq || execs[0].EndSeq != fin.Seq {
		t.Errorf("bootstrap exec = %+v", execs[0])
	}
	if execs[3].Error != "boom" || len(execs[3].SecretOutputs) != 1 {
		t.Errorf("token exec = %+v", execs[3])
	}
	ans, err := db.Answers(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ans["seed"].Value != "n2" || !ans["backup_key"].Secret || ans["backup_key"].Value != sealed || len(ans) != 2 {
		t.Errorf("Answers = %+v", ans)
	}
	got, err := db.GetRun(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusFailed || !got.FinishedAt.Equal(t0.Add(8*time.Second)) || got.HeadSeq != 11 {
		t.Errorf("run after finish = status %s finished %v head %d", got.Status, got.FinishedAt, got.HeadSeq)
	}
	at(9*time.Second, EvRunResumed, "", "", 0, RunResumed{Host: "laptop2", PID: 4242, User: "bob"})
	got, _ = db.GetRun(ctx, r.ID)
	if got.Status != StatusRunning || !got.FinishedAt.IsZero() || got.Host != "laptop2" || got.PID != 4242 {
		t.Errorf("run after resume = %+v", got)
	}
	if rep, err := db.Verify(ctx, r.ID); err != nil || !rep.OK || rep.Events != 12 {
		t.Errorf("Verify = %+v, %v", rep, err)
	}
}

func TestAppendRejects(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	r := newRun(t, db)
	tests := []struct {
		name string
		ev   Event
		want error
	}{
		{"no run id", Event{Type: EvNote, Data: []byte(`{}`)}, ErrInvalidEvent},
		{"unknown run", Event{RunID: "r-nope", Type: EvNote, Data: []byte(`{}`)}, ErrNotFound},
		{"unknown type", Event{RunID: r.ID, Type: "bogus", Data: []byte(`{}`)}, ErrInvalidEvent},
		{"second run.created", Event{RunID: r.ID, Type: EvRunCreated, Data: []byte(`{}`)}, ErrInvalidEvent},
		{"not json", Event{RunID: r.ID, Type: EvNote, Data: []byte(`{"text":`)}, ErrInvalidEvent},
		{"step without id", Event{RunID: r.ID, Type: EvStepStarted, Data: []byte(`{}`)}, ErrInvalidEvent},
		{"finished without status", Event{RunID: r.ID, Type: EvStepFinished, StepID: "a", Data: []byte(`{}`)}, ErrInvalidEvent},
		{"step id not UTF-8", Event{RunID: r.ID, Type: EvNote, StepID: "a\xff", Data: []byte(`{}`)}, ErrInvalidEvent},
		{"secret answer in clear", Event{RunID: r.ID, Type: EvAnswer, Data: []byte(`{"name":"k","value":"hunter2","secret":true}`)}, ErrInvalidEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.Append(ctx, tc.ev); !errors.Is(err, tc.want) {
				t.Fatalf("Append err = %v, want %v", err, tc.want)
			}
		})
	}
	// Nothing was written by the refused appends.
	if rep, err := db.Verify(ctx, r.ID); err != nil || rep.Events != 1 {
		t.Fatalf("after refused appends: %+v, %v", rep, err)
	}
	// Empty data is stored as null.
	ev, err := db.Append(ctx, Event{RunID: r.ID, Type: EvNote})
	if err != nil || string(ev.Data) != "null" {
		t.Fatalf("empty data: %s, %v", ev.Data, err)
	}
}

func TestSeal(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	r := newRun(t, db)
	s, err := db.Seal(ctx, r.ID, "p@ss w0rd")
	if err != nil {
		t.Fatal(err)
	}
	if !IsSealed(s) || strings.Contains(s, "p@ss") {
		t.Fatalf("Seal = %q", s)
	}
	if s2, _ := db.Seal(ctx, r.ID, "p@ss w0rd"); s2 == s {
		t.Fatal("Seal is deterministic; want a random nonce")
	}
	if p, err := db.Unseal(ctx, r.ID, s); err != nil || p != "p@ss w0rd" {
		t.Fatalf("Unseal = %q, %v", p, err)
	}
	// The key persists: a reopened DB opens old sealed values.
	db.Close()
	db2, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if p, err := db2.Unseal(ctx, r.ID, s); err != nil || p != "p@ss w0rd" {
		t.Fatalf("Unseal after reopen = %q, %v", p, err)
	}
	other, _ := openTest(t)
	if err := other.CreateRun(ctx, &Run{ID: r.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Seal(ctx, r.ID, "x"); err != nil { // the same run id, another key
		t.Fatal(err)
	}
	r2 := newRun(t, db2)
	if _, err := db2.Seal(ctx, r2.ID, "y"); err != nil { // r2 has a key: the failure is the run binding
		t.Fatal(err)
	}
	flipped := []byte(s)
	flipped[len(flipped)-3] ^= 1
	for name, in := range map[string]string{
		"other key": s, "tampered": string(flipped), "plain": "hunter2", "short": sealedV2 + "AAAA", "bad base64": sealedV2 + "!!",
		"other run": s, "v1 with no legacy key": sealedV1 + strings.TrimPrefix(s, sealedV2),
	} {
		d, id := db2, r.ID
		switch name {
		case "other key":
			d = other
		case "other run":
			id = r2.ID
		}
		if _, err := d.Unseal(ctx, id, in); !errors.Is(err, ErrSealBroken) {
			t.Errorf("Unseal(%s) err = %v, want ErrSealBroken", name, err)
		}
	}
}

func TestSecretNotInFile(t *testing.T) {
	db, path := openTest(t)
	r := newRun(t, db)
	const secret = "S3cr3t-Backup-Passphrase-7f1d"
	sealed, err := db.Seal(context.Background(), r.ID, secret)
	if err != nil {
		t.Fatal(err)
	}
	appendEvent(t, db, r.ID, EvAnswer, "", "", 0, Answer{Name: "backup_key", Value: sealed, Secret: true})
	appendEvent(t, db, r.ID, EvStepFinished, "restore", "n1", 1, StepFinished{Status: StatusSucceeded, Outputs: map[string]string{"key": sealed}, SecretOutputs: []string{"key"}})
	// A canary written in clear proves the scan reads the data.
	appendEvent(t, db, r.ID, EvNote, "", "", 0, Note{Text: "canary-in-clear-91b2"})
	var all []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if !strings.Contains(string(all), "canary-in-clear-91b2") {
		t.Fatal("canary not found in db+wal bytes: the scan does not see written data")
	}
	if strings.Contains(string(all), secret) {
		t.Fatal("secret found in clear in the database files")
	}
	if !strings.Contains(string(all), sealed) {
		t.Fatal("sealed value not found in the database files")
	}
}

func TestFileModes(t *testing.T) {
	old := syscallUmask(0) // the modes must not depend on the umask
	defer syscallUmask(old)
	dir := filepath.Join(t.TempDir(), "new", "drbook")
	path := filepath.Join(dir, "drbook.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	newRun(t, db) // makes sure -wal and -shm exist
	want := map[string]os.FileMode{dir: 0o700, path: 0o600, path + "-wal": 0o600, path + "-shm": 0o600, filepath.Join(dir, KeyFileName): 0o600}
	check := func() {
		t.Helper()
		for p, m := range want {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != m {
				t.Errorf("mode of %s = %o, want %o", filepath.Base(p), st.Mode().Perm(), m)
			}
		}
	}
	check()
	db.Close()
	// Widened modes are narrowed on the next open.
	for _, p := range []string{path, filepath.Join(dir, KeyFileName)} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db, err = Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	newRun(t, db)
	check()
	if st, _ := os.Stat(filepath.Join(dir, KeyFileName)); st.Size() != 32 {
		t.Errorf("key file size = %d, want 32", st.Size())
	}
}

func TestCorruptFile(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"text", []byte("this is not a database\n")},
		{"garbage page", []byte(strings.Repeat("\x8f\x01garbage", 512))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "drbook.db")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(context.Background(), path)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open(garbage) err = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}
