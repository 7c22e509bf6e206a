package runbooks

// Target requirements of a step kind.
const (
	TargetsRequired = "required" // the step must name nodes in `on:`
	TargetsOptional = "optional"
	TargetsNone     = "none" // the step runs on no node (confirm, input)
)

// KindInfo describes a step kind for static validation: its parameters, the
// outputs it produces and whether it runs on nodes.
type KindInfo struct {
	Name        string
	Description string
	// Params is a JSON Schema (a subset: type, properties, required,
	// additionalProperties, items, enum, minimum, maximum, minItems, pattern)
	// for the step's `with:` mapping. Nil accepts no parameters.
	Params map[string]any
	// Outputs are produced by every step of this kind.
	Outputs []OutputInfo
	// DeclaredOutputs is true when steps declare their own outputs (shell).
	DeclaredOutputs bool
	// Targets is TargetsRequired, TargetsOptional or TargetsNone.
	Targets string
	// Idempotent kinds are safe to re-run when a resume finds them interrupted.
	Idempotent bool
	// MaxParallel, if positive, caps how many targets run at once whatever
	// the step's serial: says (scale-out joins one node at a time).
	MaxParallel int
	// CommandParams names parameters that become command lines on the node;
	// a secret must never be templated into them (it would show in ps).
	CommandParams []string
	// ShownParams names parameters shown to the operator as text (confirm's
	// message): a secret templated into them is a lint warning.
	ShownParams []string
	// PollsKind is true for kinds such as wait that may poll another kind
	// named by with.kind (with with.with as its parameters) until every key
	// of with.expect holds: lint checks that kind, its parameters, and that
	// each expect key is one of its outputs.
	PollsKind bool
	// DefaultTimeout limits one attempt of a step of this kind that sets no
	// `timeout:`. Zero means the engine's default (10m); NoLimit means the
	// kind waits for a person (confirm, input) and has no limit by default.
	DefaultTimeout Duration
}

// OutputInfo is one output a kind produces.
type OutputInfo struct {
	Name   string
	Secret bool
}

// KindCatalog answers which step kinds exist. The step registry implements it.
type KindCatalog interface {
	Kind(name string) (KindInfo, bool)
	KindNames() []string
}
