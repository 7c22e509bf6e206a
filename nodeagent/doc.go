// Package nodeagent is drbook's clustered node agent: a replicated key
// store on hashicorp/raft with the disaster-recovery operations drbook's
// runbooks drive (bootstrap, join tokens, join, remove, reset, backup,
// restore, force-new, status).
//
// An Agent owns raft (raft-boltdb log/stable store, file snapshot store,
// NetworkTransport over a mutual-TLS 1.3 stream layer), a thin FSM holding
// keys and cluster metadata, a unix admin socket (DATA/admin.sock, 0600)
// used by the drbook-agent CLI, and an HTTPS API (key API with API keys,
// /v1/join with join tokens, /v1/internal/* between nodes with node
// certificates, /healthz and /metrics). See DESIGN.md beside this file for
// the protocols and the safety rules, and errors.go for the sentinels.
package nodeagent
