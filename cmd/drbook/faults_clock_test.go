package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clockRunbook issues a join token on the seed, spends some time, then joins
// the other node with it.
const clockRunbook = `apiVersion: drbook/v1
kind: Runbook
name: clock
title: Token expiry and durations under a skewed runner clock
steps:
  - id: token
    run: agent.token-create
    on: node1
    with: {ttl: %s}
  - id: slow
    run: shell
    on: node1
    with: {command: 'sleep %s; echo slept'}
  - id: join
    run: agent.join
    on: node2
    with: {peer: "{{ nodes.node1.api }}", token: "{{ steps.token.outputs.token }}"}
`

// TestFaultClockSkew_TokenExpiryByNodeClock_DurationsMonotonic skews the
// runner's wall clock by ±26 h from the slow step on (test hook
// DRBOOK_FAULT_CLOCK: every recorded time is shifted, as after an NTP step
// or on a skewed laptop) while the nodes keep the real time. Token expiry is
// decided by the issuing node's clock only, so a token valid for 1 h still
// joins with the runner 26 h ahead, and an expired one is refused with the
// runner 26 h behind; durations in the record are measured on the monotonic
// clock and do not move with the skew.
func TestFaultClockSkew_TokenExpiryByNodeClock_DurationsMonotonic(t *testing.T) {
	tests := []struct {
		name       string
		skew       time.Duration
		ttl, sleep string
		joins      bool
	}{
		{name: "runner-26h-ahead-valid-token-joins", skew: 26 * time.Hour, ttl: "1h", sleep: "1", joins: true},
		{name: "runner-26h-behind-expired-token-refused", skew: -26 * time.Hour, ttl: "1s", sleep: "2", joins: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, inv := startLab(t, 2, 1)
			dir := t.TempDir()
			db := filepath.Join(dir, "drbook.db")
			rb := filepath.Join(dir, "clock.yaml")
			if err := os.WriteFile(rb, []byte(fmt.Sprintf(clockRunbook, tt.ttl, tt.sleep)), 0o600); err != nil {
				t.Fatal(err)
			}
			r := drbook(t, []string{fmt.Sprintf("%s=slow:%s", envFaultClock, tt.skew)}, "run", rb, "-i", inv, "--headless", "--yes", "--db", db)
			if tt.joins && r.code != 0 {
				t.Fatalf("join with a valid token failed under runner skew: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			if !tt.joins && (r.code != exitFailed || !strings.Contains(r.stdout+r.stderr, "expired")) {
				t.Fatalf("an expired token was not refused as expired: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			id := runID(t, r.stdout)
			evs := recordedEvents(t, db, id)
			var tokenTime, slowTime time.Time
			slowMS, machineMS := int64(-1), int64(-1)
			for _, e := range evs {
				tm := eventTime(t, db, id, e.Seq)
				switch {
				case e.Type == "step.started" && e.Step == "token":
					tokenTime = tm
				case e.Type == "step.started" && e.Step == "slow":
					slowTime = tm
				case e.Type == "step.finished" && e.Step == "slow":
					var f struct {
						DurationMS int64 `json:"duration_ms"`
					}
					_ = json.Unmarshal([]byte(e.Data), &f)
					slowMS = f.DurationMS
				case e.Type == "run.finished":
					var f struct {
						MachineMS int64 `json:"machine_ms"`
					}
					_ = json.Unmarshal([]byte(e.Data), &f)
					machineMS = f.MachineMS
				}
			}
			// The hook was on: the record's clock jumped by the skew.
			if jump := slowTime.Sub(tokenTime); (jump - tt.skew).Abs() > time.Minute {
				t.Fatalf("recorded clock jumped %s between token and slow, want about %s", jump, tt.skew)
			}
			want, _ := time.ParseDuration(tt.sleep + "s")
			if slowMS < want.Milliseconds() || slowMS > want.Milliseconds()+5000 {
				t.Errorf("slow recorded as %d ms, want about %s whatever the skew", slowMS, want)
			}
			if machineMS < 0 || machineMS > 120_000 {
				t.Errorf("run recorded %d ms of machine time, want the real duration (skew %s)", machineMS, tt.skew)
			}
			verifyRecord(t, db, id)
		})
	}
}

// eventTime reads one event's recorded time.
func eventTime(t *testing.T, db, id string, seq int64) time.Time {
	t.Helper()
	var s string
	d := openRO(t, db)
	defer d.Close()
	if err := d.QueryRow(`SELECT time FROM events WHERE run_id = ? AND seq = ?`, id, seq).Scan(&s); err != nil {
		t.Fatal(err)
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
