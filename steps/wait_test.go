package steps_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/agent"
)

// TestWaitRefusesUnknownExpectKey: polling a kind for an output it never
// produces fails at once, naming the outputs it has, instead of polling
// until the timeout.
func TestWaitRefusesUnknownExpectKey(t *testing.T) {
	reg := steps.NewRegistry()
	if err := agent.Register(reg); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		expect map[string]any
		want   string
	}{
		{"typo", map[string]any{"leadr": "node1"}, `agent.status has no output "leadr"`},
		{"one good one bad", map[string]any{"voters": ">=3", "helthy": ">=3"}, `agent.status has no output "helthy"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := &steps.Exec{
				Step:     &runbooks.Step{ID: "verify", Run: "wait"},
				Params:   map[string]any{"kind": "agent.status", "expect": tc.expect, "interval": "10ms"},
				Target:   &runbooks.Node{Name: "node1"},
				Registry: reg,
				Stdout:   &strings.Builder{},
				Stderr:   &strings.Builder{},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			t0 := time.Now()
			_, err := steps.Wait{}.Run(ctx, x)
			if !errors.Is(err, steps.ErrBadParams) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "leader, voters, healthy") {
				t.Fatalf("err %v, want ErrBadParams with %q and the kind's outputs", err, tc.want)
			}
			if d := time.Since(t0); d > 2*time.Second {
				t.Errorf("refusal took %s: it polled", d)
			}
		})
	}
}
