package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/drbook/drbook/internal/opsig"
	"github.com/drbook/drbook/runbooks"
	"github.com/drbook/drbook/runbooks/engine"
)

// defaultApprovalTimeout is how long a headless run waits for approvals.
const defaultApprovalTimeout = 30 * time.Minute

// approvalSettings are the two-person rule's flags (docs/approvals.md).
// The operator's key, which can never approve, is the key that signs the
// record (--sign-key, signFlags).
type approvalSettings struct {
	allowedSigners string
	timeout        time.Duration
	// timeoutFlag: the command has --approval-timeout (else headless runs
	// wait defaultApprovalTimeout).
	timeoutFlag bool
}

// approvalFlags adds the two-person rule's flags to a command that runs
// steps.
func approvalFlags(cmd *cobra.Command, s *approvalSettings, headless bool) {
	cmd.Flags().StringVar(&s.allowedSigners, "allowed-signers", "", "allowed-signers file of the persons who may approve steps with approvals: (env "+envAllowedSigners+", config allowed_signers:)")
	if headless {
		cmd.Flags().DurationVar(&s.timeout, "approval-timeout", defaultApprovalTimeout, "how long a headless run waits for the approvals of a step, then stops with exit 4 (0: no limit)")
		s.timeoutFlag = true
	}
}

// approvalConfig is what the engine needs to enforce approvals, read only
// when the runbook has a step that needs them. A problem is returned in the
// config's SetupErr: the run then stops before its first step, saying why.
// The operator's key is the engine's Signer.
// fallback is the allowed-signers file the operator settings name
// ($DRBOOK_ALLOWED_SIGNERS or the config's allowed_signers), used without
// the flag.
func (s *approvalSettings) approvalConfig(rb *runbooks.Runbook, headless bool, fallback string) engine.ApprovalConfig {
	var ac engine.ApprovalConfig
	if s == nil || rb == nil {
		return ac
	}
	needs := false
	for i := range rb.Steps {
		needs = needs || rb.Steps[i].NeedsApproval()
	}
	if !needs {
		return ac
	}
	if headless {
		ac.Timeout = s.timeout
		if !s.timeoutFlag {
			ac.Timeout = defaultApprovalTimeout
		}
	}
	file := s.allowedSigners
	if file == "" {
		file = fallback
	}
	if file == "" {
		return ac
	}
	f, err := os.Open(file) // #nosec G304 -- the operator names the allowed-signers file
	if err != nil {
		ac.SetupErr = err
		return ac
	}
	defer f.Close()
	if ac.Allowed, err = opsig.ParseAllowedSigners(f, file); err != nil {
		ac.SetupErr = err
		return ac
	}
	ac.File = file
	return ac
}

// allowedSignersSetting is the allowed-signers file of the operator
// settings (flag, $DRBOOK_ALLOWED_SIGNERS or the config's allowed_signers),
// "" when none.
func (a *app) allowedSignersSetting() string {
	if a.settings == nil {
		return ""
	}
	return a.settings.AllowedSigners.Value
}
