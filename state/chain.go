package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// chainDomain prefixes the genesis hash of every run's chain.
const chainDomain = "drbook/chain/v1\n"

// GenesisHash returns the PrevHash of a run's first event.
func GenesisHash(runID string) string {
	sum := sha256.Sum256([]byte(chainDomain + runID))
	return hex.EncodeToString(sum[:])
}

// storeTime is the time format of the database: RFC 3339, UTC, fixed
// width (nanoseconds always present) so that text order is time order.
const storeTime = "2006-01-02T15:04:05.000000000Z07:00"

// formatTime formats t for storage ("" for the zero time).
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(storeTime)
}

// hashTime formats t for the canonical form: RFC3339Nano in UTC.
func hashTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// canonical returns the canonical JSON of an event (see the package doc).
func canonical(runID string, seq int64, t string, typ string, stepID, target string, attempt int64, data []byte) []byte {
	var b bytes.Buffer
	b.Grow(200 + len(data) + len(stepID) + len(target))
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	str := func(s string) {
		_ = enc.Encode(s)       // cannot fail for a string
		b.Truncate(b.Len() - 1) // drop Encode's newline
	}
	b.WriteString(`{"attempt":`)
	b.WriteString(strconv.FormatInt(attempt, 10))
	b.WriteString(`,"data":`)
	b.Write(data)
	b.WriteString(`,"run_id":`)
	str(runID)
	b.WriteString(`,"seq":`)
	b.WriteString(strconv.FormatInt(seq, 10))
	b.WriteString(`,"step_id":`)
	str(stepID)
	b.WriteString(`,"target":`)
	str(target)
	b.WriteString(`,"time":`)
	str(t)
	b.WriteString(`,"type":`)
	str(typ)
	b.WriteByte('}')
	return b.Bytes()
}

// chainHash computes Hash from PrevHash and the canonical form.
func chainHash(prev string, canon []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write([]byte{'\n'})
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil))
}

// EventHash recomputes the hash of ev from its fields and ev.PrevHash.
func EventHash(ev Event) string {
	return chainHash(ev.PrevHash, canonical(ev.RunID, ev.Seq, hashTime(ev.Time), string(ev.Type), ev.StepID, ev.Target, int64(ev.Attempt), ev.Data))
}

// rawEvent is an events row exactly as stored, every column read as text, so
// that Verify can judge a tampered row without failing to scan it.
type rawEvent struct {
	RunID, Seq, Time, Type, StepID, Target, Attempt string
	Data                                            []byte
	PrevHash, Hash                                  string
}

// verifyChain checks rows (ordered by seq as stored) of run runID against
// the chain definition and the run's recorded head. It never panics on any
// input.
func verifyChain(runID string, rows []rawEvent, headSeq int64, headHash string) VerifyReport {
	rep := VerifyReport{Events: len(rows)}
	bad := func(seq int64, format string, args ...any) VerifyReport {
		rep.OK = false
		rep.FirstBadSeq = seq
		rep.Reason = fmt.Sprintf("event %d: %s", seq, fmt.Sprintf(format, args...))
		return rep
	}
	prev := GenesisHash(runID)
	for i, r := range rows {
		want := int64(i + 1)
		seq, err := strconv.ParseInt(r.Seq, 10, 64)
		if err != nil {
			return bad(want, "sequence number %q is not an integer", r.Seq)
		}
		if seq != want {
			return bad(want, "missing (found seq %d next: sequence not contiguous)", seq)
		}
		if r.RunID != runID {
			return bad(seq, "belongs to run %q", r.RunID)
		}
		if !utf8.ValidString(r.Type) || !utf8.ValidString(r.StepID) || !utf8.ValidString(r.Target) {
			// encoding/json would map invalid bytes to U+FFFD: not injective.
			return bad(seq, "type, step id or target is not valid UTF-8")
		}
		if r.PrevHash != prev {
			return bad(seq, "prev_hash does not link to event %d", seq-1)
		}
		attempt, err := strconv.ParseInt(r.Attempt, 10, 64)
		if err != nil {
			return bad(seq, "attempt %q is not an integer", r.Attempt)
		}
		t, err := parseTime(r.Time)
		if err != nil || t.IsZero() {
			return bad(seq, "time %q is not RFC 3339", r.Time)
		}
		if !json.Valid(r.Data) {
			return bad(seq, "data is not valid JSON")
		}
		got := chainHash(prev, canonical(runID, seq, hashTime(t), r.Type, r.StepID, r.Target, attempt, r.Data))
		if got != r.Hash {
			return bad(seq, "hash mismatch")
		}
		if r.Type == string(EvRunCreated) || r.Type == string(EvRunResumed) {
			var p struct {
				Runbook   *RecordedFile `json:"runbook"`
				Inventory *RecordedFile `json:"inventory"`
			}
			if json.Unmarshal(r.Data, &p) == nil {
				for _, e := range []error{p.Runbook.check("runbook"), p.Inventory.check("inventory")} {
					if e != nil {
						return bad(seq, "%v", e)
					}
				}
			}
		}
		if r.Type == string(EvStepFinished) {
			var p StepFinished
			if json.Unmarshal(r.Data, &p) == nil && p.LogSHA256 != "" {
				if sum := sha256.Sum256(p.LogBytes()); hex.EncodeToString(sum[:]) != p.LogSHA256 {
					return bad(seq, "output log does not match its log_sha256")
				}
			}
		}
		prev = r.Hash
	}
	n := int64(len(rows))
	switch {
	case n < headSeq:
		return bad(n+1, "missing (run head is seq %d: tail deleted)", headSeq)
	case n > headSeq:
		return bad(headSeq+1, "beyond the run's recorded head seq %d", headSeq)
	case n > 0 && prev != headHash:
		return bad(n, "hash does not match the run's recorded head hash")
	case n == 0:
		return bad(1, "missing (run has no events: run.created absent)")
	}
	rep.OK = true
	return rep
}

// Verify recomputes run runID's chain from seq 1: sequence contiguity, prev
// links, hashes, and that the last event is the run's recorded head. A broken
// chain gives a report with OK false and an error wrapping ErrChainBroken
// that names the first bad seq.
func (db *DB) Verify(ctx context.Context, runID string) (VerifyReport, error) {
	run, err := db.GetRun(ctx, runID)
	if err != nil {
		return VerifyReport{}, err
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT CAST(run_id AS TEXT), CAST(seq AS TEXT), CAST(time AS TEXT), CAST(type AS TEXT),
		CAST(step_id AS TEXT), CAST(target AS TEXT), CAST(attempt AS TEXT), CAST(data AS BLOB), CAST(prev_hash AS TEXT), CAST(hash AS TEXT)
		FROM events WHERE run_id = ? ORDER BY seq`, run.ID)
	if err != nil {
		return VerifyReport{}, fmt.Errorf("verify run %s: %w", run.ID, mapErr(err))
	}
	defer rows.Close()
	var raws []rawEvent
	for rows.Next() {
		var r rawEvent
		var runID, seq, tm, typ, step, target, attempt, prev, hash *string
		if err := rows.Scan(&runID, &seq, &tm, &typ, &step, &target, &attempt, &r.Data, &prev, &hash); err != nil {
			return VerifyReport{}, fmt.Errorf("verify run %s: %w", run.ID, mapErr(err))
		}
		r.RunID, r.Seq, r.Time, r.Type, r.StepID, r.Target, r.Attempt, r.PrevHash, r.Hash =
			deref(runID), deref(seq), deref(tm), deref(typ), deref(step), deref(target), deref(attempt), deref(prev), deref(hash)
		raws = append(raws, r)
	}
	if err := rows.Err(); err != nil {
		return VerifyReport{}, fmt.Errorf("verify run %s: %w", run.ID, mapErr(err))
	}
	rep := verifyChain(run.ID, raws, run.HeadSeq, run.HeadHash)
	if !rep.OK {
		return rep, fmt.Errorf("verify run %s: %w: %s", run.ID, ErrChainBroken, rep.Reason)
	}
	return rep, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
