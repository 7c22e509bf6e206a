// Package runbooks is drbook's runbook model: it loads runbooks, inventories
// and answers files from YAML with line and column for every problem,
// validates every reference before anything runs, publishes JSON Schemas for
// editors, and renders the {{ ... }} templates steps use to pass values along.
//
// The package knows nothing of how steps execute; the step kinds it validates
// against are described by the KindCatalog the caller passes in.
package runbooks

// APIVersion is the only apiVersion this drbook understands.
const APIVersion = "drbook/v1"

// Runbook is a declarative recovery procedure: typed inputs and an ordered
// list of steps, each run on one or more inventory nodes.
type Runbook struct {
	Src         `yaml:"-"`
	APIVersion  string     `yaml:"apiVersion" required:"true" enum:"drbook/v1" doc:"Schema version of this file; always drbook/v1."`
	Kind        string     `yaml:"kind" required:"true" enum:"Runbook" doc:"Always Runbook."`
	Name        string     `yaml:"name" required:"true" pattern:"^[a-z0-9][a-z0-9._-]{0,62}$" doc:"Short machine name (lowercase, digits, dot, dash, underscore)."`
	Title       string     `yaml:"title" doc:"One-line human title shown in the picker and reports."`
	Description string     `yaml:"description" doc:"When to use this runbook and what it does."`
	Plugins     []Plugin   `yaml:"plugins" doc:"Step plugins this runbook needs, each pinned by SHA-256."`
	Inputs      []Input    `yaml:"inputs" keyed:"true" doc:"Values asked before the run starts, by name."`
	Steps       []Step     `yaml:"steps" required:"true" doc:"The steps, run in order."`
	Tags        StringList `yaml:"tags" doc:"Free-form labels (e.g. scenario names)."`
	// RTO is the recovery-time objective: the budget the TUI counts down,
	// whose crossing is recorded and notified (a drill's rto_budget
	// overrides it).
	RTO Duration `yaml:"rto" doc:"Recovery-time objective: the run's time budget (e.g. 30m). The TUI shows the time left, a warning in the last 20 % and an alarm past it; the crossing is recorded and notified; a drill's rto_budget overrides it."`

	// File is where the runbook was loaded from ("library:NAME" for shipped ones).
	File string `yaml:"-"`
	// Source is the exact bytes loaded; SHA256 is their hex digest.
	Source []byte `yaml:"-"`
	SHA256 string `yaml:"-"`
	// Warnings are the lint warnings LoadRunbook or Validate found: likely
	// mistakes that do not stop the runbook from loading.
	Warnings Diagnostics `yaml:"-"`
}

// Plugin pins a plugin executable that provides step kinds.
type Plugin struct {
	Src    `yaml:"-"`
	Path   string `yaml:"path" required:"true" doc:"Path of the plugin executable (relative to the runbook file)."`
	SHA256 string `yaml:"sha256" pattern:"^[0-9a-f]{64}$" doc:"Hex SHA-256 of the executable; a mismatch refuses the plugin."`
}

// Input types.
const (
	InputString   = "string"
	InputSecret   = "secret"
	InputBool     = "bool"
	InputInt      = "int"
	InputEnum     = "enum"
	InputDuration = "duration"
	InputNode     = "node"
	InputNodes    = "nodes"
)

// Input is one value the operator provides before the run starts.
type Input struct {
	Src         `yaml:"-"`
	Name        string     `yaml:",key"`
	Type        string     `yaml:"type" required:"true" enum:"string,secret,bool,int,enum,duration,node,nodes" doc:"Value type; secret values are masked everywhere and sealed in the record."`
	Prompt      string     `yaml:"prompt" doc:"Question shown in the form."`
	Description string     `yaml:"description" doc:"Help text shown under the prompt."`
	Default     any        `yaml:"default" doc:"Value used when no answer is given."`
	Optional    bool       `yaml:"optional" doc:"The input may be left empty."`
	Options     StringList `yaml:"options" doc:"Allowed values of an enum input."`
	Min         *int       `yaml:"min" doc:"Minimum: integer value, string length, or number of nodes."`
	Max         *int       `yaml:"max" doc:"Maximum: integer value, string length, or number of nodes."`
	Pattern     string     `yaml:"pattern" doc:"Regular expression a string answer must match."`
	Label       string     `yaml:"label" doc:"For node/nodes inputs: only offer nodes carrying this label (key or key=value)."`
	// DistinctFrom names earlier node/nodes inputs whose nodes this input may
	// not use: a node input must differ from them, a nodes input leaves them
	// out of its choices (failed ≠ healthy; joiners exclude the seed).
	DistinctFrom StringList `yaml:"distinct_from" doc:"For node/nodes inputs: earlier node or nodes inputs whose nodes this input may not use (a node must differ from them; a nodes input leaves them out)."`
}

// Failure policies of a step.
const (
	OnFailureStop     = "stop"
	OnFailureContinue = "continue"
	OnFailureAsk      = "ask"
)

// Step is one unit of work, run on each of its targets.
type Step struct {
	Src         `yaml:"-"`
	ID          string        `yaml:"id" required:"true" pattern:"^[a-z0-9][a-z0-9_-]{0,62}$" doc:"Unique id, used in references: steps.<id>.outputs.<name>."`
	Title       string        `yaml:"title" doc:"What the step does, in the operator's words."`
	Description string        `yaml:"description" doc:"Longer explanation shown before the step runs."`
	Run         string        `yaml:"run" required:"true" doc:"Step kind: shell, confirm, input, wait, agent.* or a plugin kind."`
	On          StringList    `yaml:"on" doc:"Target node(s) or group(s), or a template; omit for steps that run on no node (confirm, input)."`
	With        Params        `yaml:"with" doc:"Parameters of the step kind."`
	When        string        `yaml:"when" doc:"Guard: one expression whose value is true or false, bare (inputs.drill) or in {{ }}; the step runs only if it is true. Text, or a value that is not a boolean, is an error. Guards that read only inputs are checked before the first step runs."`
	Danger      bool          `yaml:"danger" doc:"Destructive: the operator must type a word to go ahead (the target's name unless confirm: says otherwise; headless: --yes)."`
	Confirm     *Confirmation `yaml:"confirm" doc:"For danger steps: what the operator types and why (default: the target's name)."`
	Approvals   int           `yaml:"approvals" doc:"For danger steps: how many other persons must approve the step with drbook approve (their own SSH key, listed in the allowed-signers file) before it runs; default 1 when approvers: is set (docs/approvals.md)."`
	Approvers   StringList    `yaml:"approvers" doc:"For danger steps: the principals of the allowed-signers file who may approve (e.g. alice@example.org); omitted: anyone the file allows other than the operator."`
	ForEach     string        `yaml:"for_each" doc:"Run the step once per item of a list: a template whose value is a list ({{ inputs.joiners }}, {{ groups.etcd }}) or a group name. Each item is its own execution, checkpoint and resume unit; templates read it as item (item.name, item.<var> when it names a node). on: is rendered per item and must give one node (default: the item itself)."`
	Serial      int           `yaml:"serial" doc:"Run at most this many targets (or for_each items) at once (0: all in parallel)."`
	Timeout     Duration      `yaml:"timeout" none:"true" doc:"Time limit of one attempt on one target. Default when omitted: the kind's (shell 10m, wait 5m, agent.* and plugin kinds 10m; confirm and input wait for a person: none). Write none to opt out of any limit."`
	Retries     int           `yaml:"retries" doc:"Extra attempts after a failure, with backoff."`
	RetryDelay  Duration      `yaml:"retry_delay" doc:"Delay before the first retry; doubles each time (default 1s)."`
	Until       string        `yaml:"until" doc:"Retry until this guard over the step's own outputs holds (outputs.<name>, typed like when:): an attempt whose outputs do not satisfy it fails and is retried with retry_delay backoff, up to retries: extra attempts, or while the step's timeout has not run out since the first attempt when retries is 0."`
	OnFailure   string        `yaml:"on_failure" enum:"stop,continue,ask" doc:"What a failure does: stop the run, continue, or ask the operator."`
	Check       string        `yaml:"check" doc:"Shell command run on the target when resuming an interrupted step: exit 0 means the step already took effect."`
	Outputs     []Output      `yaml:"outputs" doc:"Values the step produces, captured from stdout as key=value lines or a JSON object."`
}

// Confirmation says what the operator of a danger step must type, and why:
// the name of what is destroyed (the node being removed or reset), not
// merely where the command runs.
type Confirmation struct {
	Src    `yaml:"-"`
	Word   string `yaml:"word" required:"true" doc:"What the operator types to go ahead: a template such as {{ inputs.failed }} rendering to one word."`
	Reason string `yaml:"reason" doc:"Why this word: shown in the danger box (for example: node3 will be removed from the cluster and its data deleted)."`
}

// Output declares one value a step produces.
type Output struct {
	Src    `yaml:"-"`
	Name   string `yaml:"name" scalar:"true" required:"true" pattern:"^[a-zA-Z_][a-zA-Z0-9_]*$" doc:"Output name."`
	Secret bool   `yaml:"secret" doc:"Mask the value everywhere and seal it in the record."`
}

// Input returns the input with the given name, or nil.
func (r *Runbook) Input(name string) *Input {
	for i := range r.Inputs {
		if r.Inputs[i].Name == name {
			return &r.Inputs[i]
		}
	}
	return nil
}

// Step returns the step with the given id, or nil.
func (r *Runbook) Step(id string) *Step {
	for i := range r.Steps {
		if r.Steps[i].ID == id {
			return &r.Steps[i]
		}
	}
	return nil
}

// NeedsApproval reports whether the step waits for another person's
// approval (the two-person rule) before it runs.
func (s *Step) NeedsApproval() bool { return s.Approvals > 0 || len(s.Approvers) > 0 }

// ApprovalsNeeded is how many approvals the step needs (0: none).
func (s *Step) ApprovalsNeeded() int {
	if s.Approvals > 0 {
		return s.Approvals
	}
	if len(s.Approvers) > 0 {
		return 1
	}
	return 0
}

// DangerCount returns how many steps are marked dangerous.
func (r *Runbook) DangerCount() int {
	n := 0
	for _, s := range r.Steps {
		if s.Danger {
			n++
		}
	}
	return n
}

// Inventory describes the nodes a runbook can target and how to reach them.
type Inventory struct {
	Src        `yaml:"-"`
	APIVersion string      `yaml:"apiVersion" required:"true" enum:"drbook/v1" doc:"Always drbook/v1."`
	Kind       string      `yaml:"kind" required:"true" enum:"Inventory" doc:"Always Inventory."`
	Name       string      `yaml:"name" doc:"Name of this environment (e.g. prod-eu, lab)."`
	SSH        SSHSettings `yaml:"ssh" doc:"How to reach nodes over SSH."`
	Nodes      []Node      `yaml:"nodes" required:"true" doc:"The nodes."`
	Groups     []Group     `yaml:"groups" keyed:"true" doc:"Named sets of nodes, usable wherever a node name is."`

	File   string `yaml:"-"`
	Source []byte `yaml:"-"`
	SHA256 string `yaml:"-"`
}

// SSHSettings are the inventory-wide SSH defaults.
type SSHSettings struct {
	Src            `yaml:"-"`
	User           string   `yaml:"user" doc:"Default login user."`
	Port           int      `yaml:"port" doc:"Default port (22)."`
	IdentityFile   string   `yaml:"identity_file" doc:"Private key file; omit to use the SSH agent (SSH_AUTH_SOCK)."`
	KnownHosts     string   `yaml:"known_hosts" doc:"known_hosts file; host keys are always verified (default ~/.ssh/known_hosts)."`
	ConnectTimeout Duration `yaml:"connect_timeout" doc:"Dial and handshake time limit (default 15s)."`
}

// Transports a node can be reached by.
const (
	TransportSSH   = "ssh"
	TransportLocal = "local"
)

// Node is one machine (or lab process) a step can run on.
type Node struct {
	Src       `yaml:"-"`
	Name      string            `yaml:"name" required:"true" pattern:"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$" doc:"Node name used in runbooks and confirmations."`
	Host      string            `yaml:"host" doc:"Host name or IP address (ssh transport)."`
	Port      int               `yaml:"port" doc:"SSH port (default from ssh.port, else 22)."`
	User      string            `yaml:"user" doc:"SSH user (default from ssh.user)."`
	Transport string            `yaml:"transport" enum:"ssh,local" doc:"ssh (default) or local (run on this machine; labs and tests)."`
	Labels    map[string]string `yaml:"labels" doc:"Labels for selection (role, region, ...)."`
	Env       map[string]string `yaml:"env" doc:"Environment given to every command on this node."`
	Vars      map[string]string `yaml:"vars" doc:"Free values usable in templates as nodes.<name>.<var> (e.g. api, raft addresses)."`
	Agent     AgentSettings     `yaml:"agent" doc:"How to call drbook-agent on this node."`
}

// AgentSettings tell agent.* steps how to run the drbook-agent CLI on a node.
type AgentSettings struct {
	Src     `yaml:"-"`
	Command string            `yaml:"command" doc:"drbook-agent executable (default drbook-agent)."`
	Data    string            `yaml:"data" doc:"Agent data directory (passed as --data)."`
	Env     map[string]string `yaml:"env" doc:"Extra environment for agent commands."`
}

// Group is a named set of nodes.
type Group struct {
	Src   `yaml:"-"`
	Name  string     `yaml:",key"`
	Nodes StringList `yaml:"nodes" scalar:"true" doc:"Member node names."`
}

// Node returns the node with the given name, or nil.
func (inv *Inventory) Node(name string) *Node {
	for i := range inv.Nodes {
		if inv.Nodes[i].Name == name {
			return &inv.Nodes[i]
		}
	}
	return nil
}

// Group returns the group with the given name, or nil.
func (inv *Inventory) Group(name string) *Group {
	for i := range inv.Groups {
		if inv.Groups[i].Name == name {
			return &inv.Groups[i]
		}
	}
	return nil
}
