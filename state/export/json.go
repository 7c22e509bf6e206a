package export

import (
	"bytes"
	"encoding/json"
	"io"
	"time"

	"github.com/drbook/drbook/state"
	"github.com/drbook/drbook/state/termsafe"
)

// Document is the JSON export of a run.
type Document struct {
	Format string              `json:"format"` // "drbook/run/v1"
	Run    RunDoc              `json:"run"`
	Steps  []StepDoc           `json:"steps"`
	Events []EventDoc          `json:"events"`
	Timing Timing              `json:"timing"`
	Verify *state.VerifyReport `json:"verify"` // null when not verified
}

// RunDoc is the run part of a Document (sources are referenced by hash, not
// embedded).
type RunDoc struct {
	ID              string            `json:"id"`
	RunbookName     string            `json:"runbook_name"`
	RunbookTitle    string            `json:"runbook_title"`
	RunbookPath     string            `json:"runbook_path"`
	RunbookSHA256   string            `json:"runbook_sha256"`
	InventoryPath   string            `json:"inventory_path,omitempty"`
	InventorySHA256 string            `json:"inventory_sha256,omitempty"`
	Mode            string            `json:"mode"`
	Status          state.Status      `json:"status"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	FinishedAt      *time.Time        `json:"finished_at"`
	Host            string            `json:"host"`
	PID             int               `json:"pid"`
	User            string            `json:"user"`
	Labels          map[string]string `json:"labels,omitempty"`
	HeadSeq         int64             `json:"head_seq"`
	HeadHash        string            `json:"head_hash"`
}

// StepDoc is one step execution with its timings.
type StepDoc struct {
	StepID        string            `json:"step_id"`
	Target        string            `json:"target"`
	Attempt       int               `json:"attempt"`
	Status        state.Status      `json:"status"`
	StartedAt     *time.Time        `json:"started_at"`
	FinishedAt    *time.Time        `json:"finished_at"`
	DurationMS    int64             `json:"duration_ms"`
	ExitCode      int               `json:"exit_code"`
	Error         string            `json:"error,omitempty"`
	Outputs       map[string]string `json:"outputs,omitempty"`
	SecretOutputs []string          `json:"secret_outputs,omitempty"`
	StartSeq      int64             `json:"start_seq"`
	EndSeq        int64             `json:"end_seq"`
}

// EventDoc is one event; sealed values in its data are masked.
type EventDoc struct {
	Seq      int64           `json:"seq"`
	Time     time.Time       `json:"time"`
	Type     state.EventType `json:"type"`
	StepID   string          `json:"step_id,omitempty"`
	Target   string          `json:"target,omitempty"`
	Attempt  int             `json:"attempt,omitempty"`
	Data     any             `json:"data"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// NewDocument builds the JSON export document of a run.
func NewDocument(run state.Run, events []state.Event, execs []state.Exec, rep *state.VerifyReport) Document {
	labels := map[string]string(nil)
	if len(run.Labels) > 0 {
		labels = make(map[string]string, len(run.Labels))
		for k, v := range run.Labels {
			labels[k] = maskString(v)
		}
	}
	d := Document{
		Format: "drbook/run/v1",
		Run: RunDoc{
			ID: run.ID, RunbookName: run.RunbookName, RunbookTitle: run.RunbookTitle, RunbookPath: run.RunbookPath,
			RunbookSHA256: run.RunbookSHA256, InventoryPath: run.InventoryPath, InventorySHA256: run.InventorySHA256,
			Mode: run.Mode, Status: run.Status, CreatedAt: run.CreatedAt.UTC(), UpdatedAt: run.UpdatedAt.UTC(),
			FinishedAt: timePtr(run.FinishedAt), Host: run.Host, PID: run.PID, User: run.User, Labels: labels,
			HeadSeq: run.HeadSeq, HeadHash: run.HeadHash,
		},
		Steps:  []StepDoc{},
		Events: []EventDoc{},
		Timing: runTiming(events, execs),
		Verify: rep,
	}
	for _, x := range execs {
		d.Steps = append(d.Steps, StepDoc{
			StepID: x.StepID, Target: x.Target, Attempt: x.Attempt, Status: x.Status,
			StartedAt: timePtr(x.StartedAt), FinishedAt: timePtr(x.FinishedAt), DurationMS: execDuration(x).Milliseconds(),
			ExitCode: x.ExitCode, Error: maskString(x.Error), Outputs: maskedOutputs(x), SecretOutputs: x.SecretOutputs,
			StartSeq: x.StartSeq, EndSeq: x.EndSeq,
		})
	}
	for _, ev := range events {
		d.Events = append(d.Events, EventDoc{
			Seq: ev.Seq, Time: ev.Time.UTC(), Type: ev.Type, StepID: ev.StepID, Target: ev.Target, Attempt: ev.Attempt,
			Data: maskedData(ev), PrevHash: ev.PrevHash, Hash: ev.Hash,
		})
	}
	return d
}

// JSON writes a run as one indented JSON document (see Document): run,
// steps with timings, events, time split and verification result (null
// when rep is nil). Sealed values are masked, so event data of secrets
// differs from what was hashed; verify the database, not the export. A
// step.finished event's log is exact: "log", or "log_raw" (base64) when the
// log is not valid UTF-8, hashes to its "log_sha256". The document is
// written with termsafe.JSON, so it is safe to print on a terminal and
// decodes to the same data.
func JSON(w io.Writer, run state.Run, events []state.Event, execs []state.Exec, rep *state.VerifyReport) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(NewDocument(run, events, execs, rep)); err != nil {
		return err
	}
	_, err := w.Write(termsafe.JSON(buf.Bytes()))
	return err
}
