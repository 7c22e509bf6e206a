// Package clustertest drives real drbook-agent processes on 127.0.0.1
// through the CLI: failover, removal and reset, backup and restore, quorum
// loss with force-new, safety-rule refusals, linearizability and
// benchmarks. Everything lives in its _test files; the binary is built once
// in TestMain.
package clustertest
