package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

// rawDB opens the database file directly, as an attacker editing it would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite3", path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func rawExec(t *testing.T, raw *sql.DB, q string, args ...any) {
	t.Helper()
	res, err := raw.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("%s: no row changed", q)
	}
}

func TestChainTamper(t *testing.T) {
	const n = 100
	tests := []struct {
		name    string
		tamper  func(t *testing.T, raw *sql.DB, runID string)
		wantSeq int64 // 0: chain must verify
		reason  string
	}{
		{"untouched", func(*testing.T, *sql.DB, string) {}, 0, ""},
		{"one byte of data", func(t *testing.T, raw *sql.DB, runID string) {
			var data []byte
			if err := raw.QueryRow(`SELECT data FROM events WHERE run_id = ? AND seq = 37`, runID).Scan(&data); err != nil {
				t.Fatal(err)
			}
			i := strings.Index(string(data), "ok")
			data[i] = 'O' // still valid JSON
			rawExec(t, raw, `UPDATE events SET data = ? WHERE run_id = ? AND seq = 37`, data, runID)
		}, 37, "hash mismatch"},
		{"delete last event", func(t *testing.T, raw *sql.DB, runID string) {
			rawExec(t, raw, `DELETE FROM events WHERE run_id = ? AND seq = ?`, runID, n)
		}, n, "tail deleted"},
		{"delete last event and rewind head seq", func(t *testing.T, raw *sql.DB, runID string) {
			rawExec(t, raw, `DELETE FROM events WHERE run_id = ? AND seq = ?`, runID, n)
			rawExec(t, raw, `UPDATE runs SET head_seq = ? WHERE id = ?`, n-1, runID)
		}, n - 1, "head hash"},
		{"delete a middle event", func(t *testing.T, raw *sql.DB, runID string) {
			rawExec(t, raw, `DELETE FROM events WHERE run_id = ? AND seq = 50`, runID)
		}, 50, "not contiguous"},
		{"swap two events' data", func(t *testing.T, raw *sql.DB, runID string) {
			rawExec(t, raw, `UPDATE events SET data = CASE seq WHEN 20 THEN (SELECT data FROM events WHERE run_id = ?1 AND seq = 21)
				ELSE (SELECT data FROM events WHERE run_id = ?1 AND seq = 20) END WHERE run_id = ?1 AND seq IN (20, 21)`, runID)
		}, 20, "hash mismatch"},
		{"change a step's target", func(t *testing.T, raw *sql.DB, runID string) {
			rawExec(t, raw, `UPDATE events SET target = 'n9' WHERE run_id = ? AND seq = 64`, runID)
		}, 64, "hash mismatch"},
		{"shift a time", func(t *testing.T, raw *sql.DB, runID string) {
			rawExec(t, raw, `UPDATE events SET time = '2030-01-01T00:00:00.000000000Z' WHERE run_id = ? AND seq = 10`, runID)
		}, 10, "hash mismatch"},
		{"attempt not a number", func(t *testing.T, raw *sql.DB, runID string) {
			rawExec(t, raw, `UPDATE events SET attempt = 'x' WHERE run_id = ? AND seq = 12`, runID)
		}, 12, "attempt"},
		{"recomputed hash, broken link", func(t *testing.T, raw *sql.DB, runID string) {
			// Rewrite event 30 consistently with itself: its successor's link breaks.
			var ev Event
			var tm string
			if err := raw.QueryRow(`SELECT seq, time, type, step_id, target, attempt, data, prev_hash FROM events WHERE run_id = ? AND seq = 30`, runID).
				Scan(&ev.Seq, &tm, &ev.Type, &ev.StepID, &ev.Target, &ev.Attempt, &ev.Data, &ev.PrevHash); err != nil {
				t.Fatal(err)
			}
			ev.RunID = runID
			ev.Time, _ = parseTime(tm)
			ev.Data = []byte(`{"status":"failed"}`)
			rawExec(t, raw, `UPDATE events SET data = ?, hash = ? WHERE run_id = ? AND seq = 30`, []byte(ev.Data), EventHash(ev), runID)
		}, 31, "prev_hash"},
		{"genesis replaced", func(t *testing.T, raw *sql.DB, runID string) {
			rawExec(t, raw, `UPDATE events SET prev_hash = ? WHERE run_id = ? AND seq = 1`, strings.Repeat("0", 64), runID)
		}, 1, "prev_hash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, path := openTest(t)
			r := newRun(t, db)
			t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			for i := 2; i <= n; i++ {
				step := fmt.Sprintf("s%03d", i)
				p := StepFinished{Status: StatusSucceeded, Log: "ok " + step, DurationMS: int64(i)}
				if _, err := db.Append(ctx, Event{RunID: r.ID, Time: t0.Add(time.Duration(i) * time.Millisecond), Type: EvStepFinished,
					StepID: step, Target: "n1", Attempt: 1, Data: mustJSON(t, p)}); err != nil {
					t.Fatal(err)
				}
			}
			tc.tamper(t, rawDB(t, path), r.ID)
			rep, err := db.Verify(ctx, r.ID)
			if tc.wantSeq == 0 {
				if err != nil || !rep.OK || rep.Events != n {
					t.Fatalf("Verify = %+v, %v; want OK with %d events", rep, err, n)
				}
				return
			}
			if !errors.Is(err, ErrChainBroken) || rep.OK {
				t.Fatalf("Verify = %+v, %v; want ErrChainBroken", rep, err)
			}
			if rep.FirstBadSeq != tc.wantSeq || !strings.Contains(err.Error(), fmt.Sprintf("event %d:", tc.wantSeq)) ||
				!strings.Contains(rep.Reason, tc.reason) {
				t.Fatalf("Verify: seq %d, %v; want seq %d and reason containing %q", rep.FirstBadSeq, err, tc.wantSeq, tc.reason)
			}
		})
	}
}

// testChain builds a valid in-memory chain of n rows for run runID.
func testChain(runID string, n int) []rawEvent {
	rows := make([]rawEvent, 0, n)
	prev := GenesisHash(runID)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for i := 1; i <= n; i++ {
		ev := Event{RunID: runID, Seq: int64(i), Time: t0.Add(time.Duration(i) * time.Second), Type: EvStepFinished,
			StepID: fmt.Sprintf("s%d", i), Target: "n1", Attempt: i % 3, Data: []byte(fmt.Sprintf(`{"status":"succeeded","log":"line %d"}`, i)), PrevHash: prev}
		ev.Hash = EventHash(ev)
		rows = append(rows, rawEvent{RunID: runID, Seq: fmt.Sprint(ev.Seq), Time: formatTime(ev.Time), Type: string(ev.Type),
			StepID: ev.StepID, Target: ev.Target, Attempt: fmt.Sprint(ev.Attempt), Data: ev.Data, PrevHash: prev, Hash: ev.Hash})
		prev = ev.Hash
	}
	return rows
}

func TestCanonicalForm(t *testing.T) {
	// The documented canonical form, byte for byte.
	got := string(canonical("r1", 7, "2026-01-02T03:04:05.5Z", "step.finished", "a<b", "n\"1", 2, []byte(`{"x":1}`)))
	want := `{"attempt":2,"data":{"x":1},"run_id":"r1","seq":7,"step_id":"a<b","target":"n\"1","time":"2026-01-02T03:04:05.5Z","type":"step.finished"}`
	if got != want {
		t.Fatalf("canonical =\n%s\nwant\n%s", got, want)
	}
	rows := testChain("r1", 3)
	if rep := verifyChain("r1", rows, 3, rows[2].Hash); !rep.OK {
		t.Fatalf("verifyChain(valid) = %+v", rep)
	}
}

// FuzzVerify mutates one stored field of one event of a valid chain: Verify
// must never panic, and must reject every mutation that changes a field's
// bytes where bytes are hashed as stored.
func FuzzVerify(f *testing.F) {
	f.Add(uint8(0), uint8(7), uint16(0), []byte("x"))
	f.Add(uint8(1), uint8(1), uint16(3), []byte("99"))
	f.Add(uint8(2), uint8(2), uint16(0), []byte("not a time"))
	f.Add(uint8(7), uint8(3), uint16(5), []byte(`"}`))
	f.Add(uint8(8), uint8(4), uint16(63), []byte("0"))
	f.Add(uint8(10), uint8(4), uint16(0), []byte(""))
	const runID = "r20260102-030405-abcd"
	const n = 5
	f.Fuzz(func(t *testing.T, field, idx uint8, pos uint16, b []byte) {
		rows := testChain(runID, n)
		head := rows[n-1].Hash
		headSeq := int64(n)
		i := int(idx) % n
		r := &rows[i]
		// splice replaces bytes at pos (clamped) with b.
		splice := func(s []byte) []byte {
			p := int(pos)
			if p > len(s) {
				p = len(s)
			}
			end := p + len(b)
			if end > len(s) {
				end = len(s)
			}
			out := append([]byte{}, s[:p]...)
			out = append(out, b...)
			return append(out, s[end:]...)
		}
		strict := true // the mutation must be detected if it changed bytes
		var before, after string
		switch field % 12 {
		case 0:
			before, r.RunID = r.RunID, string(splice([]byte(r.RunID)))
			after = r.RunID
		case 1:
			before, r.Seq = r.Seq, string(splice([]byte(r.Seq)))
			after, strict = r.Seq, false // "03" means 3
		case 2:
			before, r.Time = r.Time, string(splice([]byte(r.Time)))
			after, strict = r.Time, false // equal instants in other spellings
		case 3:
			before, r.Type = r.Type, string(splice([]byte(r.Type)))
			after = r.Type
		case 4:
			before, r.StepID = r.StepID, string(splice([]byte(r.StepID)))
			after = r.StepID
		case 5:
			before, r.Target = r.Target, string(splice([]byte(r.Target)))
			after = r.Target
		case 6:
			before, r.Attempt = r.Attempt, string(splice([]byte(r.Attempt)))
			after, strict = r.Attempt, false
		case 7:
			before = string(r.Data)
			r.Data = splice(r.Data)
			after = string(r.Data)
		case 8:
			before, r.PrevHash = r.PrevHash, string(splice([]byte(r.PrevHash)))
			after = r.PrevHash
		case 9:
			before, r.Hash = r.Hash, string(splice([]byte(r.Hash)))
			after = r.Hash
			if i == n-1 {
				strict = after != head
			}
		case 10:
			rows = rows[:i] // truncate
			before, after = "n", "fewer"
		case 11:
			headSeq = int64(pos) % (n + 2)
			before, after = fmt.Sprint(n), fmt.Sprint(headSeq)
		}
		rep := verifyChain(runID, rows, headSeq, head)
		if strict && before != after && rep.OK {
			t.Fatalf("mutation of field %d of event %d (%q -> %q) not detected", field%12, i+1, before, after)
		}
		if !rep.OK && (rep.FirstBadSeq < 1 || !strings.HasPrefix(rep.Reason, "event ")) {
			t.Fatalf("report %+v does not name a seq", rep)
		}
	})
}

// FuzzVerifyDB writes arbitrary values (text, integer, blob) into one stored
// column of one event through raw SQL, then verifies through the API: no
// panic, no error other than ErrChainBroken, and every change is either
// detected or left the chain's meaning intact (then Verify still passes).
func FuzzVerifyDB(f *testing.F) {
	f.Add(uint8(7), uint8(0), uint8(3), "x", int64(0))
	f.Add(uint8(1), uint8(1), uint8(2), "", int64(99))
	f.Add(uint8(2), uint8(0), uint8(4), "2026-01-02T03:04:05Z", int64(0))
	f.Add(uint8(6), uint8(2), uint8(1), "\x00\xff", int64(0))
	ctx := context.Background()
	dir := f.TempDir()
	path := filepath.Join(dir, "drbook.db")
	db, err := Open(ctx, path)
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	r := Run{ID: "r20260102-030405-f022", RunbookName: "fuzz"}
	if err := db.CreateRun(ctx, &r); err != nil {
		f.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := db.Append(ctx, Event{RunID: r.ID, Type: EvStepFinished, StepID: "s", Target: "n1", Attempt: i,
			Data: mustJSON(f, StepFinished{Status: StatusSucceeded, Log: fmt.Sprint("line ", i)})}); err != nil {
			f.Fatal(err)
		}
	}
	raw, err := sql.Open("sqlite3", path+"?_busy_timeout=5000")
	if err != nil {
		f.Fatal(err)
	}
	defer raw.Close()
	cols := []string{"run_id", "seq", "time", "type", "step_id", "target", "attempt", "data", "prev_hash", "hash"}
	f.Fuzz(func(t *testing.T, col, kind, seq uint8, s string, n int64) {
		c := cols[int(col)%len(cols)]
		k := int64(seq)%5 + 1
		var orig any
		if err := raw.QueryRow(`SELECT `+c+` FROM events WHERE run_id = ? AND seq = ?`, r.ID, k).Scan(&orig); err != nil {
			t.Fatal(err)
		}
		var v any
		switch kind % 3 {
		case 0:
			v = s
		case 1:
			v = n
		default:
			v = []byte(s)
		}
		if _, err := raw.Exec(`UPDATE events SET `+c+` = ? WHERE run_id = ? AND seq = ?`, v, r.ID, k); err != nil {
			return // constraint (duplicate key, NOT NULL): nothing stored
		}
		// Where did the row go? (run_id or seq may have changed.)
		where := `run_id = ? AND seq = ?`
		args := []any{r.ID, k}
		switch c {
		case "run_id":
			args[0] = v
		case "seq":
			args[1] = v
		}
		rep, verr := db.Verify(ctx, r.ID)
		if _, err := raw.Exec(`UPDATE events SET `+c+` = ? WHERE `+where, append([]any{orig}, args...)...); err != nil {
			t.Fatalf("restore: %v", err)
		}
		if verr != nil && !errors.Is(verr, ErrChainBroken) {
			t.Fatalf("Verify error %v is not ErrChainBroken", verr)
		}
		if verr == nil && !rep.OK {
			t.Fatalf("report %+v not OK without error", rep)
		}
		if rep2, err := db.Verify(ctx, r.ID); err != nil || !rep2.OK {
			t.Fatalf("after restore: %+v, %v", rep2, err)
		}
	})
}
