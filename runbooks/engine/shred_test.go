package engine_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3" // the attacker reads the record with plain SQLite

	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/runlog"
	"github.com/drbook/drbook/steps"
)

// The attacker of these tests holds the database files and the key file
// (a stolen laptop, a copied backup of the data directory) and knows the
// formats: they try every sealed value under the key file's key and under
// every run key they can unwrap, with every additional data drbook uses.

var sealedInRecord = regexp.MustCompile(`sealed:v[0-9]+:[A-Za-z0-9+/=]+`)

type loot struct {
	sealed  []string          // sealed strings found in any cell of any table
	wrapped map[string][]byte // run id → wrapped run key
	runs    []string
}

// steal reads the record with a read-only SQLite connection.
func steal(t *testing.T, dbPath string) loot {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := loot{wrapped: map[string][]byte{}}
	var tables []string
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	for _, tb := range tables {
		rows, err := db.Query(`SELECT * FROM "` + tb + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			cells := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range cells {
				ptrs[i] = &cells[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, c := range cells {
				switch v := c.(type) {
				case string:
					l.sealed = append(l.sealed, sealedInRecord.FindAllString(v, -1)...)
				case []byte:
					l.sealed = append(l.sealed, sealedInRecord.FindAllString(string(v), -1)...)
				}
			}
		}
		rows.Close()
	}
	keyTable := `SELECT run_id, wrapped FROM run_keys`
	if !slices.Contains(tables, "run_keys") { // a database from before per-run keys
		keyTable = `SELECT '', x'' WHERE 0`
	}
	rows, err = db.Query(keyTable)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var w []byte
		if err := rows.Scan(&id, &w); err != nil {
			t.Fatal(err)
		}
		l.wrapped[id] = w
	}
	rows.Close()
	rows, err = db.Query(`SELECT id FROM runs`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		l.runs = append(l.runs, id)
	}
	rows.Close()
	return l
}

func gcmTry(key, raw, aad []byte) ([]byte, bool) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, false
	}
	g, err := cipher.NewGCM(b)
	if err != nil || len(raw) < g.NonceSize()+g.Overhead() {
		return nil, false
	}
	p, err := g.Open(nil, raw[:g.NonceSize()], raw[g.NonceSize():], aad)
	return p, err == nil
}

// attack returns every plaintext the attacker opens with the files alone,
// and the run keys they could unwrap; then drbook itself tries.
func attack(t *testing.T, dbPath string) (opened []string, runKeys map[string][]byte) {
	t.Helper()
	opened, runKeys, l := attackFiles(t, dbPath)
	// drbook itself, given the same files, must not open them either.
	db, err := state.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range l.runs {
		for _, s := range l.sealed {
			if p, err := db.Unseal(context.Background(), id, s); err == nil {
				opened = append(opened, "drbook: "+p)
			} else if !errors.Is(err, state.ErrSealBroken) {
				t.Errorf("Unseal: %v, want ErrSealBroken", err)
			}
		}
	}
	return opened, runKeys
}

// attackFiles is the attack with the files alone (drbook never opens them,
// so nothing is migrated).
func attackFiles(t *testing.T, dbPath string) (opened []string, runKeys map[string][]byte, l loot) {
	t.Helper()
	l = steal(t, dbPath)
	fileKey, err := os.ReadFile(filepath.Join(filepath.Dir(dbPath), state.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	runKeys = map[string][]byte{}
	keys := [][]byte{fileKey}
	for id, w := range l.wrapped {
		if k, ok := gcmTry(fileKey, w, []byte("drbook/state/run-key/v1\n"+id)); ok {
			runKeys[id] = k
			keys = append(keys, k)
		}
	}
	aads := [][]byte{[]byte("drbook/state/seal/v1")}
	for _, id := range l.runs {
		aads = append(aads, []byte("drbook/state/seal/v2\n"+id))
	}
	for _, s := range l.sealed {
		i := strings.Index(s[len("sealed:v"):], ":")
		raw, err := base64.StdEncoding.DecodeString(s[len("sealed:v")+i+1:])
		if err != nil {
			continue
		}
		for _, k := range keys {
			for _, aad := range aads {
				if p, ok := gcmTry(k, raw, aad); ok {
					opened = append(opened, string(p))
				}
			}
		}
	}
	return opened, runKeys, l
}

// grepFiles fails the test when any needle is in the database, WAL or -shm
// bytes.
func grepFiles(t *testing.T, dbPath string, needles map[string][]byte) {
	t.Helper()
	for _, sfx := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(dbPath + sfx)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for name, n := range needles {
			if len(n) > 0 && bytes.Contains(b, n) {
				t.Errorf("%s found in %s", name, filepath.Base(dbPath+sfx))
			}
		}
	}
}

func randomSecret(t *testing.T, prefix string) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// shredRunbook: a secret input and a secret output made at run time (so no
// plaintext is in the runbook source), both used by a later step.
const shredRunbook = header + `inputs:
  backup_key: {type: secret, prompt: key}
steps:
  - id: mint
    run: shell
    on: node1
    with:
      command: 'tok=adm-$(od -An -N12 -tx1 /dev/urandom | tr -d " \n"); printf %s "$tok" > "$NODE_DIR/token"; echo "{\"token\": \"$tok\"}"'
    outputs: [{name: token, secret: true}]
  - id: use
    run: shell
    on: node1
    with:
      command: 'test -f "$NODE_DIR/fixed" || exit 1; printf "%s|%s" "$K" "$T" | sha256sum > "$NODE_DIR/used"'
      env: {K: "{{ inputs.backup_key }}", T: "{{ steps.mint.outputs.token }}"}
    on_failure: ask
`

type shredCase struct {
	f       *fixture
	pass    string
	runID   string
	control []string          // plaintexts opened mid-run (positive control)
	keys    map[string][]byte // run keys unwrapped mid-run
	wrapped []byte
}

// startShredRun runs shredRunbook; while the last step runs, the attacker
// opens the record once (it must open both secrets then: the attack works).
func startShredRun(t *testing.T, fixed bool, op steps.Operator) (*shredCase, error) {
	c := &shredCase{f: newFixture(t, 1), pass: randomSecret(t, "S3cret-pass-")}
	if fixed {
		if err := os.WriteFile(filepath.Join(c.f.dir, "node1", "fixed"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := c.f.config(t, shredRunbook, op)
	obs := cfg.Observer
	cfg.Observer = func(ev runlog.Event) {
		obs(ev)
		s, ok := ev.(runlog.Recorded)
		if ok && s.Event.Type == state.EvStepStarted && s.Event.StepID == "use" && c.control == nil {
			c.control, c.keys = attack(t, c.f.db.Path())
			c.wrapped = steal(t, c.f.db.Path()).wrapped[c.runID]
		}
		if ok && s.Event.Type == state.EvRunCreated {
			c.runID = s.Event.RunID
		}
	}
	out, err := engine.Start(context.Background(), cfg, map[string]runbooks.Value{"backup_key": {V: c.pass, Secret: true}})
	c.runID = out.RunID
	return c, err
}

func (c *shredCase) token(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(c.f.dir, "node1", "token"))
	if err != nil || len(b) < 10 {
		t.Fatalf("token: %q %v", b, err)
	}
	return string(b)
}

// checkControl: mid-run, with the same files, the attacker did open both
// secrets, with the run key they unwrapped.
func (c *shredCase) checkControl(t *testing.T) {
	t.Helper()
	tok := c.token(t)
	joined := strings.Join(c.control, "\n")
	if !strings.Contains(joined, c.pass) || !strings.Contains(joined, tok) {
		t.Fatalf("positive control: mid-run the attack opened %d values, not both secrets: the attack is broken", len(c.control))
	}
	if len(c.keys[c.runID]) != 32 || len(c.wrapped) == 0 {
		t.Fatalf("positive control: run key not unwrapped mid-run")
	}
}

// checkShredded: nothing opens, no secret or key bytes are in the files.
func (c *shredCase) checkShredded(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	run, err := c.f.db.GetRun(ctx, c.runID)
	if err != nil {
		t.Fatal(err)
	}
	if run.HoldsSecrets {
		t.Errorf("run %s (%s) still holds secrets", run.ID, run.Status)
	}
	needles := map[string][]byte{
		"secret input": []byte(c.pass), "secret output": []byte(c.token(t)),
		"run key": c.keys[c.runID], "wrapped run key": c.wrapped,
		"run key (hex)": []byte(hex.EncodeToString(c.keys[c.runID])),
	}
	// While drbook still has the database open (WAL in use) ...
	grepFiles(t, c.f.db.Path(), needles)
	if opened, keys := attack(t, c.f.db.Path()); len(opened) > 0 || len(keys) > 0 {
		t.Errorf("after the run ended, the files opened %d values and %d run keys: %q", len(opened), len(keys), opened)
	}
	// ... and after it closed.
	c.f.db.Close()
	grepFiles(t, c.f.db.Path(), needles)
	if opened, _ := attack(t, c.f.db.Path()); len(opened) > 0 {
		t.Errorf("after close, the files opened %q", opened)
	}
}

func TestShredSucceededRun(t *testing.T) {
	c, err := startShredRun(t, true, nil)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, c.f.rec.lines())
	}
	c.checkControl(t)
	c.checkShredded(t)
	if rep, err := c.f.db.Verify(context.Background(), c.runID); err == nil && !rep.OK {
		t.Errorf("chain after shred: %+v", rep)
	}
}

func TestShredAbortedRun(t *testing.T) {
	c, err := startShredRun(t, false, &scripted{decisions: []steps.Decision{{Kind: steps.DecisionAbort}}})
	if !errors.Is(err, engine.ErrAborted) {
		t.Fatalf("run: %v, want aborted", err)
	}
	c.checkControl(t)
	c.checkShredded(t)
	db, err := state.Open(context.Background(), c.f.db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := c.f.config(t, shredRunbook, nil)
	cfg.Store = db
	if _, err := engine.Resume(context.Background(), cfg, c.runID, engine.ResumeOptions{}); !errors.Is(err, engine.ErrRunFinished) {
		t.Errorf("resume of an aborted run: %v, want ErrRunFinished", err)
	}
}

// TestFailedRunResumesWithSecrets: a failed run can be resumed, so it keeps
// its secrets; the resume uses both (recorded, not asked again) and, once it
// succeeds, they are shredded.
func TestFailedRunResumesWithSecrets(t *testing.T) {
	c, err := startShredRun(t, false, nil)
	if !errors.Is(err, engine.ErrStepFailed) {
		t.Fatalf("run: %v, want a failed step", err)
	}
	c.checkControl(t)
	ctx := context.Background()
	run, err := c.f.db.GetRun(ctx, c.runID)
	if err != nil || run.Status != state.StatusFailed || !run.HoldsSecrets {
		t.Fatalf("after failure: %s holds=%v %v", run.Status, run.HoldsSecrets, err)
	}
	if err := os.WriteFile(filepath.Join(c.f.dir, "node1", "fixed"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Resume(ctx, c.f.config(t, shredRunbook, nil), c.runID, engine.ResumeOptions{}); err != nil {
		t.Fatalf("resume: %v\n%s", err, c.f.rec.lines())
	}
	used, err := os.ReadFile(filepath.Join(c.f.dir, "node1", "used"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(c.pass + "|" + c.token(t)))
	if !strings.HasPrefix(string(used), hex.EncodeToString(sum[:])) {
		t.Errorf("the resumed step did not get both secrets back from the record")
	}
	c.checkShredded(t)
}

// TestLegacyDatabaseFromPreviousRelease opens a copy of a database written
// by the previous drbook (testdata/legacy-v1: values sealed with the key
// file's key itself, a failed run and a succeeded run, each with a secret
// input and output). The succeeded run's secrets must open no more at once;
// the failed run resumes with its secrets and, once it succeeds, nothing in
// the files opens and the old key is in none of them.
func TestLegacyDatabaseFromPreviousRelease(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "db", "drbook.db")
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
		t.Fatal(err)
	}
	fixtureDir := filepath.Join("..", "..", "testdata", "legacy-v1")
	for _, n := range []string{"drbook.db", state.KeyFileName} {
		b, err := os.ReadFile(filepath.Join(fixtureDir, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(filepath.Dir(dbPath), n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	oldKey, _ := os.ReadFile(filepath.Join(fixtureDir, state.KeyFileName))
	const failedPass, donePass = "legacy-pass-of-the-failed-run", "legacy-pass-of-the-succeeded-run"

	// Positive control: with the old files, the attack opens both runs'.
	before, _, _ := attackFiles(t, dbPath)
	all := strings.Join(before, "\n")
	var tokens []string
	for _, p := range before {
		if strings.HasPrefix(p, "adm-") {
			tokens = append(tokens, p)
		}
	}
	if !strings.Contains(all, failedPass) || !strings.Contains(all, donePass) || len(tokens) < 2 {
		t.Fatalf("positive control: the legacy files opened %q", before)
	}

	db, err := state.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runs, err := db.ListRuns(ctx, state.RunFilter{})
	if err != nil || len(runs) != 2 {
		t.Fatalf("runs: %v %v", runs, err)
	}
	var failed, done state.Run
	for _, r := range runs {
		switch r.Status {
		case state.StatusFailed:
			failed = r
		case state.StatusSucceeded:
			done = r
		}
	}
	if !failed.HoldsSecrets || done.HoldsSecrets {
		t.Errorf("after the upgrade: failed holds=%v, succeeded holds=%v", failed.HoldsSecrets, done.HoldsSecrets)
	}
	after, _, _ := attackFiles(t, dbPath)
	joined := strings.Join(after, "\n")
	if strings.Contains(joined, donePass) {
		t.Errorf("the succeeded run's secret still opens after the upgrade: %q", after)
	}
	if !strings.Contains(joined, failedPass) {
		t.Errorf("the failed run's secret no longer opens with its run key: %q", after)
	}

	// Resume the failed run on a local node of this test.
	node := filepath.Join(dir, "node1")
	if err := os.MkdirAll(node, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(node, "fixed"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := runbooks.ParseInventory("inv.yaml", []byte("apiVersion: drbook/v1\nkind: Inventory\nnodes:\n  - name: node1\n    transport: local\n    env: {NODE_DIR: "+node+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, db: db, inv: inv, reg: steps.NewRegistry(), rec: &recorder{}}
	cfg := f.config(t, string(failed.RunbookSource), nil)
	if _, err := engine.Resume(ctx, cfg, failed.ID, engine.ResumeOptions{AcceptChanged: true}); err != nil {
		t.Fatalf("resume of the legacy failed run: %v\n%s", err, f.rec.lines())
	}
	used, err := os.ReadFile(filepath.Join(node, "used"))
	if err != nil {
		t.Fatal(err)
	}
	pass, tok, _ := strings.Cut(string(used), "|")
	if pass != failedPass || !slices.Contains(tokens, tok) {
		t.Errorf("the resumed step got %q, want the recorded passphrase and token", used)
	}
	if opened, keys := attack(t, dbPath); len(opened) > 0 || len(keys) > 0 {
		t.Errorf("after both runs ended, the files open %q (%d run keys)", opened, len(keys))
	}
	grepFiles(t, dbPath, map[string][]byte{"the old key file's key": oldKey, "a secret": []byte(failedPass)})
	if b, _ := os.ReadFile(filepath.Join(filepath.Dir(dbPath), state.KeyFileName)); bytes.Equal(b, oldKey) {
		t.Error("the key file still holds the old key")
	}
	for _, r := range runs {
		if rep, err := db.Verify(ctx, r.ID); err != nil || !rep.OK {
			t.Errorf("chain of %s: %+v %v", r.ID, rep, err)
		}
	}
}
