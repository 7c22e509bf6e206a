package engine

import (
	"slices"
	"sort"
	"testing"

	"github.com/drbook/drbook/runbooks"
)

func TestStepInputRefs(t *testing.T) {
	tests := []struct {
		name string
		step runbooks.Step
		want []string
	}{
		{"on and nested with", runbooks.Step{
			On:   runbooks.StringList{"{{ inputs.seed }}"},
			With: runbooks.Params{Values: map[string]any{"env": map[string]any{"K": "{{ inputs.key }}"}, "list": []any{"x-{{ inputs.backup | quote }}"}}},
		}, []string{"backup", "key", "seed"}},
		{"index expression", runbooks.Step{
			With: runbooks.Params{Values: map[string]any{"peer": "{{ nodes[inputs.seed].api }}"}},
		}, []string{"seed"}},
		{"guard as template and bare", runbooks.Step{When: "inputs.drill and not inputs.dry"}, []string{"drill", "dry"}},
		{"guard template", runbooks.Step{When: "{{ inputs.mode == \"full\" }}"}, []string{"mode"}},
		{"check", runbooks.Step{Check: "test -f {{ inputs.file }}"}, []string{"file"}},
		{"title and description are display only", runbooks.Step{Title: "Restore {{ inputs.backup }}", Description: "{{ inputs.x }}"}, nil},
		{"outputs of steps are not inputs", runbooks.Step{On: runbooks.StringList{"{{ steps.a.outputs.node }}"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for n := range stepInputRefs(&tc.step) {
				got = append(got, n)
			}
			sort.Strings(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("refs %v, want %v", got, tc.want)
			}
		})
	}
}
