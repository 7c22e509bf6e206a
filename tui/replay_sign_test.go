package tui

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/evidence"
	"github.com/drbook/drbook/steps"
	"github.com/drbook/drbook/steps/transport"
)

// TestTUIReplaySigned: the replay of a run the engine signed (real key from
// ssh-keygen, real SQLite record) says who signed it, and each signature
// appears in the run's output where it was recorded.
func TestTUIReplaySigned(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := filepath.Join(dir, "alice")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	sg, err := opsig.LoadSigner(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(ctx, filepath.Join(dir, "drbook.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	inv := loadInv(t)
	rb := loadRB(t, "testdata/e2e/drill.yaml", inv)
	inputs := map[string]runbooks.Value{
		"seed": {V: "node2"}, "passphrase": {V: "hunter2-secret", Secret: true}, "label": {V: "drill"},
	}
	cfg := engine.Config{Runbook: rb, Inventory: inv, Registry: steps.NewRegistry(), Store: db,
		Dial: func(context.Context, *runbooks.Node) (transport.Transport, error) {
			return &transport.Local{BaseEnv: os.Environ()}, nil
		},
		Operator: &engine.Headless{Yes: true}, Mode: state.ModeHeadless, Signer: sg}
	out, err := engine.Start(ctx, cfg, inputs)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	run, _ := db.GetRun(ctx, out.RunID)
	events, _ := db.Events(ctx, run.ID)
	rep := Replay{Run: run, Events: events}
	rep.Verify, rep.VerifyErr = db.Verify(ctx, run.ID)
	sig, err := evidence.Check(run.ID, events, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep.Signatures = &sig
	m := New(ctx, Options{Replay: &rep, NoTick: true})
	got := sized(t, drive(m), 220, 40)
	who := state.CurrentActor("").String()
	if want := "signed by " + who; !strings.Contains(got, want) {
		t.Errorf("replay does not say %q:\n%s", want, got)
	}
	unsigned := rep
	unsigned.Signatures = &evidence.Report{Status: evidence.StatusUnsigned, OK: true}
	if got := sized(t, drive(New(ctx, Options{Replay: &unsigned, NoTick: true})), 220, 40); !strings.Contains(got, "UNSIGNED") {
		t.Errorf("an unsigned replay does not say so:\n%s", got)
	}
	// Checked against the file that lists alice, the header names her;
	// against a file without her key, it says NOT VERIFIED, not that the
	// chain (which is intact) is broken.
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want, notWant string }{
		{"alice " + string(pub), "signed by alice ✓", "NOT VERIFIED"},
		{"bob ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfz5fWOCH3lx2hXmLBpsvNmnUMXkPeoRh0vl4hAs0z5\n", "NOT VERIFIED ✗", "CHAIN BROKEN"},
	} {
		allowed, err := opsig.ParseAllowedSigners(strings.NewReader(c.file), "allowed")
		if err != nil {
			t.Fatal(err)
		}
		checked, _ := evidence.Check(run.ID, events, allowed)
		r := rep
		r.Signatures = &checked
		got := sized(t, drive(New(ctx, Options{Replay: &r, NoTick: true})), 220, 40)
		if !strings.Contains(got, c.want) || strings.Contains(got, c.notWant) {
			t.Errorf("checked against %q: want %q, not %q:\n%s", c.file, c.want, c.notWant, got)
		}
	}
}
