// Package state is drbook's checkpoint store: the durable record of every
// runbook run, kept in one SQLite file (github.com/mattn/go-sqlite3, WAL
// journal, synchronous=FULL, so a checkpoint is on disk when Append returns;
// a step.finished or step.output shares the fsync of the next checkpoint,
// at most 20 ms later and always before the next step starts: see
// groupsync.go).
//
// A run is a row in the runs table plus an append-only, per-run event log.
// Every event is linked to its predecessor by a SHA-256 hash chain, so that
// Verify can prove a recorded run is complete and unaltered. The tables execs
// (one row per step execution) and answers are projections of the log,
// materialised in the same transaction as the event they come from; the log
// is the source of truth.
//
// # Hash chain (drbook/chain/v1)
//
// For the event with sequence number seq (1-based, contiguous) of run runID:
//
//	Hash     = hex(SHA-256(PrevHash + "\n" + canonical))
//	PrevHash = Hash of event seq-1, or for seq 1 the genesis
//	           hex(SHA-256("drbook/chain/v1\n" + runID))
//
// where canonical is the JSON object with exactly these members, in this
// order (sorted by key), no insignificant white space, strings encoded by
// encoding/json (HTML escaping off):
//
//	{"attempt":N,"data":D,"run_id":S,"seq":N,"step_id":S,"target":S,"time":S,"type":S}
//
// time is the event time in UTC formatted with time.RFC3339Nano, and D is the
// event payload exactly as stored (its bytes are hashed as stored; an empty
// payload is stored and hashed as null). A payload must be one valid JSON
// value and the string members valid UTF-8, which makes the encoding
// unambiguous (injective). The runs row keeps the chain's
// tail (HeadSeq, HeadHash), so a deleted tail is detected too.
//
// # Output logs
//
// A step.finished payload holds the step execution's output log exactly
// (see StepFinished.LogBytes: the node's bytes line by line, binary
// included, after secret masking, with a truncation marker when output
// passed the cap) in "log", or in "log_raw" (base64) when it is not valid
// UTF-8, and its hex SHA-256 in "log_sha256". Both are inside the hashed
// payload, so the chain covers the log; Verify also checks that each log
// still hashes to its log_sha256, and the execs projection holds the same
// exact bytes.
//
// # Secrets
//
// Secrets are never stored in clear: callers seal them with DB.Seal for
// their run and store the sealed string ("sealed:v2:..."). Each run that has
// a secret has a data key of its own (AES-256-GCM, random), stored in
// run_keys wrapped by the 32-byte key kept in drbook.key beside the
// database (mode 0600). When the run ends for good (Status.EndsRun:
// succeeded, aborted) the run.finished transaction deletes its key and
// blanks the sealed values of the projections; the connection runs with
// secure_delete on and the WAL is truncated after the shred, so the files
// keep no copy of the key. The event log keeps the ciphertext (the hash
// chain covers it), which no key opens any more. Databases from before
// per-run keys are migrated at the first open (see migrateSeals). Renderers
// in state/export show sealed values as a mask and never unseal them.
//
// # Run lock
//
// DB.Lock gives one runner at a time the right to drive a run. A holder on
// the same host whose process is gone (kill -9) is stale and taken over at
// once; a holder on another host is stale after 60 s without heartbeat.
package state
