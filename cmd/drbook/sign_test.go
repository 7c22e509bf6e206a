package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/steps/transport/sshtest"
)

const signRunbook = `apiVersion: drbook/v1
kind: Runbook
name: signed
title: A signed run
inputs:
  seed: {type: node, prompt: Seed node}
steps:
  - id: hello
    title: Say hello
    run: shell
    on: "{{ inputs.seed }}"
    with: {command: 'echo hello from {{ target.name }}'}
  - id: wipe
    title: Destroy the old data
    run: shell
    on: "{{ inputs.seed }}"
    danger: true
    with: {command: 'echo wiped'}
`

// operatorKey makes a key with the real ssh-keygen and returns its path and
// allowed-signers line for principal.
func operatorKey(t *testing.T, dir, name, principal string) (string, string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(p + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return p, principal + " " + strings.TrimSpace(string(pub)) + "\n"
}

// startAgent starts a real ssh-agent holding key and returns its socket
// (the agent is killed, by its pid, when the test ends).
func startAgent(t *testing.T, key string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := cmd.Start(); err != nil {
		t.Fatalf("ssh-agent: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ssh-agent socket never appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	return sock
}

// copyState copies a lab's state directory (database, WAL, key file) so an
// attack can be tried on a copy.
func copyState(t *testing.T, db string) string {
	t.Helper()
	src := filepath.Dir(db)
	dst := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dst, filepath.Base(db))
}

// rechainDB is the attacker with write access to the database: it applies
// edit to run id's events (in seq order; edit may drop some by returning
// nil), then recomputes every hash and the run's stored head, so that the
// chain alone verifies.
func rechainDB(t *testing.T, path, id string, edit func([]state.Event) []state.Event) {
	t.Helper()
	sdb, err := state.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := sdb.Events(context.Background(), id)
	sdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	evs = edit(evs)
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM events WHERE run_id = ?`, id); err != nil {
		t.Fatal(err)
	}
	prev := state.GenesisHash(id)
	for i, ev := range evs {
		ev.Seq, ev.PrevHash = int64(i+1), prev
		ev.Hash = state.EventHash(ev)
		prev = ev.Hash
		if _, err := db.Exec(`INSERT INTO events (run_id, seq, time, type, step_id, target, attempt, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, ev.Seq, ev.Time.UTC().Format("2006-01-02T15:04:05.000000000Z07:00"), string(ev.Type), ev.StepID, ev.Target, ev.Attempt, []byte(ev.Data), ev.PrevHash, ev.Hash); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`UPDATE runs SET head_seq = ?, head_hash = ? WHERE id = ?`, len(evs), prev, id); err != nil {
		t.Fatal(err)
	}
}

// TestSignedRunVerifiesAndAttacksFail: a headless run signs its record with
// the operator's key from a real ssh-agent (at the danger confirmation and
// at the end); replay --verify --allowed-signers passes. On copies of the
// database: the rewrite attack (the confirmer's uid and name changed in one
// event, every hash and the stored head recomputed, so that the chain
// alone verifies), a cut tail, a removed signature and a signer not in the
// file each fail with exit 5, naming why.
func TestSignedRunVerifiesAndAttacksFail(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 1)
	key, line := operatorKey(t, l.dir, "alice", "alice@example.org")
	_, foreign := operatorKey(t, l.dir, "mallory", "mallory@example.org")
	sock := startAgent(t, key)
	allowed := l.write(t, "allowed_signers", line)
	foreignFile := l.write(t, "foreign_signers", foreign)
	rb := l.write(t, "signed.yaml", signRunbook)
	ans := l.write(t, "answers.yaml", "inputs:\n  seed: node1\n")
	r := drbook(t, []string{"SSH_AUTH_SOCK=" + sock}, "run", rb, "-i", l.inv, "--answers", ans, "--headless", "--yes", "--db", l.db)
	if r.code != 0 {
		t.Fatalf("run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "UNSIGNED") {
		t.Fatalf("a run with an agent key says unsigned:\n%s", r.stderr)
	}
	id := runID(t, r.stdout)

	v := drbook(t, nil, "replay", id, "--verify", "--allowed-signers", allowed, "--db", l.db)
	if v.code != 0 || !strings.Contains(v.stdout, "Signatures: OK — 2 signature(s)") || !strings.Contains(v.stdout, "danger wipe") ||
		!strings.Contains(v.stdout, "allowed as alice@example.org") {
		t.Fatalf("replay --verify --allowed-signers: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	j := drbook(t, nil, "replay", id, "--allowed-signers", allowed, "-o", "json", "--db", l.db)
	var doc struct {
		Verify     *state.VerifyReport `json:"verify"`
		Signatures struct {
			Status     string `json:"status"`
			Signatures []struct {
				Reason string       `json:"reason"`
				Actor  *state.Actor `json:"actor"`
			} `json:"signatures"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal([]byte(j.stdout), &doc); err != nil || j.code != 0 {
		t.Fatalf("replay -o json: exit %d %v\n%s", j.code, err, j.stdout)
	}
	me := state.CurrentActor("")
	if doc.Verify == nil || !doc.Verify.OK || doc.Signatures.Status != "signed" || len(doc.Signatures.Signatures) != 2 ||
		doc.Signatures.Signatures[1].Actor == nil || doc.Signatures.Signatures[1].Actor.User != me.User || doc.Signatures.Signatures[1].Actor.UID != me.UID {
		t.Fatalf("replay -o json signatures: %+v", doc)
	}

	uidRE := regexp.MustCompile(`"uid":\d+`)
	userRE := regexp.MustCompile(`"user":"[^"]*"`)
	attacks := []struct {
		name    string
		edit    func([]state.Event) []state.Event
		allowed string
		want    string
	}{
		{"rewrite attack", func(evs []state.Event) []state.Event {
			for i, ev := range evs {
				if ev.Type == state.EvOperatorWait && ev.StepID == "wipe" {
					d := uidRE.ReplaceAll(ev.Data, []byte(`"uid":1000`))
					d = userRE.ReplaceAll(d, []byte(`"user":"mallory"`))
					evs[i].Data = bytes.ReplaceAll(d, []byte(me.String()), []byte("mallory@"+me.Host))
				}
			}
			return evs
		}, allowed, "rewritten after it was signed"},
		{"cut tail", func(evs []state.Event) []state.Event { return evs[:len(evs)-3] }, allowed, "no signature covers them"},
		{"removed signature", func(evs []state.Event) []state.Event { return evs[:len(evs)-1] }, allowed, "no signature covers them"},
		{"foreign key", func(evs []state.Event) []state.Event { return evs }, foreignFile, "is not allowed by the allowed-signers file"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			db := copyState(t, l.db)
			rechainDB(t, db, id, a.edit)
			// The chain alone still verifies: only the signatures catch it.
			chain := drbook(t, nil, "replay", id, "--verify", "--db", db)
			if !strings.Contains(chain.stdout, "Verification: OK") {
				t.Fatalf("the attacked chain does not verify by itself (the attack is not the one meant):\n%s%s", chain.stdout, chain.stderr)
			}
			r := drbook(t, nil, "replay", id, "--verify", "--allowed-signers", a.allowed, "--db", db)
			if r.code != exitUnverified || !strings.Contains(r.stderr, a.want) {
				t.Fatalf("replay --verify --allowed-signers: exit %d, want %d naming %q\n%s%s", r.code, exitUnverified, a.want, r.stdout, r.stderr)
			}
		})
	}
	// The rewrite fails even without an allowed-signers file: the
	// signatures no longer match the chain.
	db := copyState(t, l.db)
	rechainDB(t, db, id, attacks[0].edit)
	if r := drbook(t, nil, "replay", id, "--verify", "--db", db); r.code != exitUnverified || !strings.Contains(r.stderr, "rewritten") {
		t.Errorf("replay --verify of the rewrite: exit %d\n%s", r.code, r.stderr)
	}
}

// TestSigningRequiredAndUnsigned: with no key anywhere (no agent, a local
// node and no identity file), a run says it is recorded unsigned and
// replay --verify calls it "unsigned" (exit 0) but fails it under an
// allowed-signers file; --require-signing (or $DRBOOK_REQUIRE_SIGNING)
// refuses to start with exit 2, recording nothing; a --sign-key that cannot
// be used is exit 2; --sign-key with a key file signs.
func TestSigningRequiredAndUnsigned(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "state", "drbook.db")
	inv := filepath.Join(dir, "inv.yaml")
	rb := filepath.Join(dir, "signed.yaml")
	ans := filepath.Join(dir, "answers.yaml")
	for p, c := range map[string]string{
		inv: "apiVersion: drbook/v1\nkind: Inventory\nname: local\nnodes:\n  - name: node1\n    transport: local\n",
		rb:  signRunbook, ans: "inputs:\n  seed: node1\n",
	} {
		if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key, line := operatorKey(t, dir, "alice", "alice")
	allowed := filepath.Join(dir, "allowed")
	if err := os.WriteFile(allowed, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	noAgent := []string{"SSH_AUTH_SOCK=", "DRBOOK_SIGN_KEY=", "DRBOOK_REQUIRE_SIGNING="}
	for _, c := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"flag", noAgent, []string{"--require-signing"}, "signing is required"},
		{"env", append(noAgent[:2:2], "DRBOOK_REQUIRE_SIGNING=1"), nil, "signing is required"},
		{"bad key", noAgent, []string{"--sign-key", filepath.Join(dir, "nope")}, "signing key"},
	} {
		r := drbook(t, c.env, append([]string{"run", rb, "-i", inv, "--answers", ans, "--headless", "--yes", "--db", db}, c.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, want %d naming %q\n%s%s", c.name, r.code, exitUsage, c.want, r.stdout, r.stderr)
		}
	}
	if r := drbook(t, nil, "runs", "--db", db); strings.Contains(r.stdout, "signed") {
		t.Errorf("a refused run was recorded:\n%s", r.stdout)
	}
	r := drbook(t, noAgent, "run", rb, "-i", inv, "--answers", ans, "--headless", "--yes", "--db", db)
	if r.code != 0 || !strings.Contains(r.stderr, "recorded UNSIGNED") {
		t.Fatalf("unsigned run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	id := runID(t, r.stdout)
	if v := drbook(t, nil, "replay", id, "--verify", "--db", db); v.code != 0 || !strings.Contains(v.stdout, "Signatures: none — unsigned") {
		t.Errorf("replay --verify of an unsigned run: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	if v := drbook(t, nil, "replay", id, "--verify", "--allowed-signers", allowed, "--db", db); v.code != exitUnverified || !strings.Contains(v.stderr, "the run is unsigned") {
		t.Errorf("replay --allowed-signers of an unsigned run: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	r = drbook(t, noAgent, "run", rb, "-i", inv, "--answers", ans, "--headless", "--yes", "--db", db, "--sign-key", key, "--require-signing")
	if r.code != 0 {
		t.Fatalf("run --sign-key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if v := drbook(t, nil, "replay", runID(t, r.stdout), "--allowed-signers", allowed, "--db", db); v.code != 0 || !strings.Contains(v.stdout, "Signatures: OK") {
		t.Errorf("replay of a --sign-key run: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}

// TestBundleVerifies: drbook export --bundle of a signed run verifies with
// sha256sum -c and ssh-keygen -Y verify alone (the real tools), and with
// drbook verify (text and JSON); a byte changed in the events or a
// signature fails drbook verify with exit 5, naming the file.
func TestBundleVerifies(t *testing.T) {
	l := newLab(t, sshtest.StartOpenSSH(t), 1)
	_, line := operatorKey(t, l.dir, "alice", "alice@example.org")
	key := filepath.Join(l.dir, "alice")
	allowed := l.write(t, "allowed_signers", line)
	rb := l.write(t, "signed.yaml", signRunbook)
	ans := l.write(t, "answers.yaml", "inputs:\n  seed: node1\n")
	r := drbook(t, []string{"SSH_AUTH_SOCK="}, "run", rb, "-i", l.inv, "--answers", ans, "--headless", "--yes", "--db", l.db, "--sign-key", key)
	if r.code != 0 {
		t.Fatalf("run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	id := runID(t, r.stdout)
	bundle := filepath.Join(l.dir, "bundle")
	if e := drbook(t, nil, "export", id, "--bundle", bundle, "--db", l.db); e.code != 0 || !strings.Contains(e.stdout, "wrote 9 files") {
		t.Fatalf("export: exit %d\n%s%s", e.code, e.stdout, e.stderr)
	}
	sh := func(stdin string, name string, args ...string) (string, error) {
		c := exec.Command(name, args...)
		c.Dir = bundle
		if stdin != "" {
			f, err := os.Open(filepath.Join(bundle, stdin))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			c.Stdin = f
		}
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if out, err := sh("", "sha256sum", "-c", "MANIFEST"); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	sigs, _ := filepath.Glob(filepath.Join(bundle, "signatures", "*.sig"))
	if len(sigs) != 2 {
		t.Fatalf("signatures: %v", sigs)
	}
	for _, s := range sigs {
		rel, _ := filepath.Rel(bundle, s)
		out, err := sh(strings.TrimSuffix(rel, ".sig")+".msg", "ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "alice@example.org", "-n", opsig.Namespace, "-s", rel)
		if err != nil || !strings.Contains(out, "Good \""+opsig.Namespace+"\" signature for alice@example.org") {
			t.Fatalf("ssh-keygen -Y verify %s: %v\n%s", rel, err, out)
		}
	}
	if v := drbook(t, nil, "verify", bundle, "--allowed-signers", allowed); v.code != 0 || !strings.Contains(v.stdout, "Signatures: OK — 2 signature(s)") {
		t.Fatalf("drbook verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	j := drbook(t, []string{"DRBOOK_ALLOWED_SIGNERS=" + allowed}, "verify", bundle, "-o", "json")
	var doc struct {
		OK         bool   `json:"ok"`
		RunID      string `json:"run_id"`
		Signatures struct {
			Status         string `json:"status"`
			SignersChecked bool   `json:"signers_checked"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal([]byte(j.stdout), &doc); err != nil || j.code != 0 || !doc.OK || doc.RunID != id || doc.Signatures.Status != "signed" || !doc.Signatures.SignersChecked {
		t.Fatalf("verify -o json: exit %d %v %+v\n%s", j.code, err, doc, j.stdout)
	}
	for _, name := range []string{"events.jsonl", filepath.ToSlash(mustRel(t, bundle, sigs[1]))} {
		p := filepath.Join(bundle, filepath.FromSlash(name))
		orig, _ := os.ReadFile(p)
		b := bytes.Clone(orig)
		b[len(b)/3] ^= 0x04
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := sh("", "sha256sum", "-c", "--quiet", "MANIFEST"); err == nil {
			t.Errorf("sha256sum -c passed with %s changed\n%s", name, out)
		}
		v := drbook(t, nil, "verify", bundle, "--allowed-signers", allowed)
		if v.code != exitUnverified || !strings.Contains(v.stderr, name) {
			t.Errorf("drbook verify with %s changed: exit %d, want %d naming it\n%s%s", name, v.code, exitUnverified, v.stdout, v.stderr)
		}
		if err := os.WriteFile(p, orig, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func mustRel(t *testing.T, base, p string) string {
	t.Helper()
	r, err := filepath.Rel(base, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const handoverRunbook = `apiVersion: drbook/v1
kind: Runbook
name: handover
title: Two operators
steps:
  - id: first
    run: shell
    on: node1
    with: {command: 'echo first'}
  - id: slow
    run: shell
    on: node1
    with: {command: 'if [ -f "$NODE_DIR/once" ]; then echo again; else touch "$NODE_DIR/once"; echo slow started; sleep 60; fi'}
  - id: last
    run: shell
    on: node1
    with: {command: 'echo last by $(id -un)'}
`

// TestHandoverOtherOSUser: operator A (root) starts a run, signed with A's
// key, and is interrupted (SIGTERM); operator B — a real second OS account,
// drbook-test, with a key of its own — resumes it. The record holds a
// run.handover naming both (user, uid, host, key), signed by B; the lock
// passed; replay shows the handover, and the record verifies with both
// keys allowed and fails with only A's. Needs root (CI runs as root) to
// run drbook as the second account.
func TestHandoverOtherOSUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run drbook as a second OS account")
	}
	sshtest.StartOpenSSH(t) // creates the drbook-test account if missing
	bob, err := user.Lookup(sshtest.TestUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(bob.Uid)
	gid, _ := strconv.Atoi(bob.Gid)
	// A directory both accounts can reach: the binary, the record, the
	// node's directory.
	dir, err := os.MkdirTemp("", "drbook-handover-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // #nosec G302 -- the second account must traverse it
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "drbook")
	b, err := os.ReadFile(drbookBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil { // #nosec G306 -- an executable for both accounts
		t.Fatal(err)
	}
	node := filepath.Join(dir, "node1")
	if err := os.MkdirAll(node, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(node, 0o777) // #nosec G302 -- both accounts write the node's files
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil { // #nosec G306 -- test files both accounts read
			t.Fatal(err)
		}
		return p
	}
	inv := write("inv.yaml", "apiVersion: drbook/v1\nkind: Inventory\nname: local\nnodes:\n  - name: node1\n    transport: local\n    env: {NODE_DIR: "+node+"}\n")
	rb := write("handover.yaml", handoverRunbook)
	keyA, lineA := operatorKey(t, dir, "alice", "alice")
	keyB, lineB := operatorKey(t, dir, "bob", "bob")
	for _, p := range []string{keyB, keyB + ".pub"} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	both := write("allowed_both", lineA+lineB)
	onlyA := write("allowed_a", lineA)
	// B takes the run over by resuming it, or by ending it (abort): both
	// record the handover.
	for _, mode := range []string{"resume", "abort"} {
		t.Run(mode, func(t *testing.T) {
			if err := os.RemoveAll(filepath.Join(node, "once")); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(dir, "state-"+mode, "drbook.db")

			// A's segment, interrupted by SIGTERM while slow runs.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			a := exec.CommandContext(ctx, bin, "run", rb, "-i", inv, "--headless", "--yes", "--db", db, "--sign-key", keyA)
			a.Env = append(os.Environ(), "NO_COLOR=1", "SSH_AUTH_SOCK=")
			out, err := a.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var aErr bytes.Buffer
			a.Stderr = &aErr
			if err := a.Start(); err != nil {
				t.Fatal(err)
			}
			var aOut strings.Builder
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				aOut.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "slow started") {
					_ = a.Process.Signal(syscall.SIGTERM)
					break
				}
			}
			_, _ = io.Copy(&aOut, out)
			_ = a.Wait()
			if code := a.ProcessState.ExitCode(); code != exitInterrupted {
				t.Fatalf("A's run: exit %d, want %d\n%s%s", code, exitInterrupted, aOut.String(), aErr.String())
			}
			id := runID(t, aOut.String())

			// B resumes as the second OS account: the record is made B's to write.
			if err := filepath.Walk(filepath.Dir(db), func(p string, _ os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				return os.Chown(p, uid, gid)
			}); err != nil {
				t.Fatal(err)
			}
			bargs := []string{"resume", id, "--redo", "slow", "--yes", "--db", db, "--sign-key", keyB}
			if mode == "abort" {
				bargs = []string{"abort", id, "--reason", "taken over by bob", "--db", db, "--sign-key", keyB}
			}
			bcmd := exec.CommandContext(ctx, bin, bargs...)
			bcmd.Dir = dir
			bcmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + bob.HomeDir, "NO_COLOR=1", "USER=root"} // $USER lies: the record must not believe it
			bcmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
			bOut, err := bcmd.CombinedOutput()
			if err != nil {
				t.Fatalf("B's resume: %v\n%s", err, bOut)
			}
			if mode == "resume" && (!strings.Contains(string(bOut), "handover") || !strings.Contains(string(bOut), "last by "+sshtest.TestUser)) {
				t.Errorf("B's resume output:\n%s", bOut)
			}

			sdb, err := state.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := sdb.Events(context.Background(), id)
			sdb.Close()
			if err != nil {
				t.Fatal(err)
			}
			host, _ := os.Hostname()
			var h *state.RunHandover
			for _, ev := range evs {
				if ev.Type == state.EvRunHandover {
					var p state.RunHandover
					if err := ev.Decode(&p); err != nil {
						t.Fatal(err)
					}
					h = &p
				}
			}
			fpA, fpB := fingerprint(t, keyA), fingerprint(t, keyB)
			wantFrom := state.Actor{User: "root", UID: 0, Host: host, Key: fpA}
			wantTo := state.Actor{User: sshtest.TestUser, UID: uid, Host: host, Key: fpB}
			if h == nil || h.From != wantFrom || h.To != wantTo {
				t.Fatalf("handover %+v, want from %+v to %+v", h, wantFrom, wantTo)
			}
			rep := drbook(t, nil, "replay", id, "--verify", "--allowed-signers", both, "--db", db)
			if rep.code != 0 || !strings.Contains(rep.stdout, sshtest.TestUser+"@"+host+" (uid "+bob.Uid+", key "+fpB+") takes the run over from root@"+host+" (uid 0, key "+fpA+")") ||
				(mode == "resume" && !strings.Contains(rep.stdout, "handover: signed by "+sshtest.TestUser+"@"+host)) ||
				(mode == "abort" && !strings.Contains(rep.stdout, "aborted: signed by "+sshtest.TestUser+"@"+host)) {
				t.Fatalf("replay: exit %d\n%s%s", rep.code, rep.stdout, rep.stderr)
			}
			if r := drbook(t, nil, "replay", id, "--verify", "--allowed-signers", onlyA, "--db", db); r.code != exitUnverified || !strings.Contains(r.stderr, sshtest.TestUser) {
				t.Errorf("replay with only A allowed: exit %d\n%s", r.code, r.stderr)
			}

		})
	}
}

func fingerprint(t *testing.T, key string) string {
	t.Helper()
	s, err := opsig.LoadSigner(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return s.Fingerprint()
}
