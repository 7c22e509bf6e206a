package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// TestLogBytesRoundTrip: a binary log survives the record exactly (event
// payload and execs projection), hashes to its log_sha256, and Verify
// refuses a log that no longer matches it.
func TestLogBytesRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	log := []byte("ok\r\nnul \x00 esc \x1b]0;t\x07 bad \xff\xfe\xc3\n! err \x9b\nlast")
	for _, tc := range []struct {
		name   string
		log    []byte
		tamper bool
	}{{"binary", log, false}, {"utf8", []byte("plain ✓\r\n"), false}, {"mismatch", log, true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRun(t, db)
			var fin StepFinished
			fin.Status = StatusSucceeded
			fin.SetLog(tc.log)
			if tc.tamper {
				fin.LogRaw = append(bytes.Clone(fin.LogRaw), 'x')
			}
			appendEvent(t, db, r.ID, EvStepStarted, "s", "n1", 1, StepStarted{Title: "s"})
			appendEvent(t, db, r.ID, EvStepFinished, "s", "n1", 1, fin)
			evs, err := db.Events(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			var got StepFinished
			if err := evs[len(evs)-1].Decode(&got); err != nil {
				t.Fatal(err)
			}
			execs, err := db.Execs(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			rep, verr := db.Verify(ctx, r.ID)
			if tc.tamper {
				if verr == nil || !strings.Contains(rep.Reason, "log_sha256") {
					t.Errorf("verify accepted a log that does not match its hash: %+v %v", rep, verr)
				}
				return
			}
			if !bytes.Equal(got.LogBytes(), tc.log) || execs[0].Log != string(tc.log) {
				t.Errorf("log changed in the record: %q / %q, want %q", got.LogBytes(), execs[0].Log, tc.log)
			}
			if sum := sha256.Sum256(tc.log); got.LogSHA256 != hex.EncodeToString(sum[:]) {
				t.Error("log_sha256 is not the SHA-256 of the log")
			}
			if verr != nil || !rep.OK {
				t.Errorf("verify: %+v %v", rep, verr)
			}
		})
	}
}
