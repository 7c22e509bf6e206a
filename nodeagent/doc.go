// Package nodeagent is drbook's clustered node agent: a replicated key
// store on hashicorp/raft with the disaster-recovery operations drbook's
// runbooks drive (bootstrap, join tokens, join, remove, reset, backup,
// restore, force-new, status).
//
// An Agent is the node: its credentials, the cluster operations
// (bootstrap.go, tokens.go, join.go, remove.go, reset.go, forcenew.go) and
// the services. The replicated state lives in the store (store.go): raft
// (raft-boltdb log/stable store, file snapshot store, NetworkTransport over
// a mutual-TLS 1.3 stream layer) and a thin FSM holding keys and cluster
// metadata, which applies each command through a table of one function
// per opcode. The services reach the store through the small Store
// interface (Apply, Ready, Info, State): the leader's create batcher,
// /healthz, status and the metrics collector. The HTTPS API (key API with
// API keys, built on the KeyService interface; /v1/join with join tokens;
// /v1/internal/* between nodes with node certificates; /healthz and
// /metrics) and the unix admin socket (DATA/admin.sock, 0600) used by the
// drbook-agent CLI, built on the ClusterService, KeyAdminService and
// BackupService interfaces, call the agent's operations. See DESIGN.md
// beside this file for the structure, the protocols and the safety rules,
// and errors.go for the sentinels.
//
// # HTTPS key API
//
// Clients trust DATA/ca.pem and send "Authorization: Bearer <API key>"
// (the key printed once by `cluster create`). Any member answers; followers
// forward writes to the leader, and reads are linearizable.
//
//	POST   /v1/keys            {"keys":[{"id"?,"name"?,"type"?,"group"?,"material"?}]} -> [{"id","created"}]
//	PUT    /v1/keys/{id}       {"name"?,"type"?,"group"?,"material"?(base64)}        -> {"id","created"} (created=false if it existed)
//	GET    /v1/keys/{id}       -> {"id","name","type","group","created","sha256","material"(base64)}; 404 if absent
//	DELETE /v1/keys/{id}       -> {"id","changed":true}; 404 if absent
//	GET    /v1/keys[?count]    -> list without material, or {"keys":N}; add ?stale for a local read
//	GET    /healthz, /metrics  (no auth; JSON health, 503 unless raft runs; Prometheus text)
//
// The API listens from the start, before the node is in a cluster: then it
// presents a throwaway self-signed certificate, /healthz answers 503 "not in
// a cluster" and /metrics has no raft figures. --metrics-listen serves the
// same two paths over plain HTTP. Metrics and example alerts:
// docs/monitoring.md.
//
// Errors are {"error","sentinel"?,"exit_code","not_applied"?}; not_applied
// is true when the request certainly had no effect and may be retried.
//
// # Limits (refused before anything is allocated)
//
// Credentials are checked from the headers, before a byte of the body is
// read: a key API call without a valid API key is answered 401 ("missing
// or wrong API key (header Authorization: Bearer drbkapi1.…)", with
// WWW-Authenticate: Bearer), an internal call without a member's
// certificate 401 too. Bodies have per-endpoint limits, checked against
// Content-Length before reading and enforced while reading
// (http.MaxBytesReader); over the limit the answer is 413 naming it:
//
//	POST /v1/join                      4 KiB   (JoinMaxBody)
//	POST /v1/keys, PUT /v1/keys/{id}   1 MiB   (KeyAPIMaxBody)
//	POST /v1/internal/{verb}           4 KiB   (InternalMaxBody; keys_create, a forwarded key API call: 8 MiB)
//	admin socket                       64 MiB  (AdminMaxBody)
//
// Headers must arrive within --api-header-timeout (5 s; the connection is
// closed) and a body within --api-body-timeout (10 s, counted from the end
// of the headers; 408). At most --api-max-unauthenticated (32) requests
// without valid credentials (join, /healthz, /metrics, refused calls) are
// served at once; more are answered 503 with Retry-After: 1 at once, never
// queued. Requests with an API key or a member's certificate are not
// counted. /metrics counts refusals in
// drbook_api_refused_total{reason="unauthenticated|too_large|timeout|busy"}. Authenticated requests that break a safety rule keep their 409
// "refused by rule …".
package nodeagent
