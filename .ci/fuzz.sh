#!/usr/bin/env bash
# Runs every go test -fuzz target for a bounded time (FUZZTIME, default 10s
# each) and prints the executions per target. A crasher is written by go test
# under the package's testdata/fuzz/FuzzXxx/ — commit it: it then runs as a
# regression case in every plain `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-10s}

# Every process below (go, the fuzz coordinator, each fuzz worker) gets at most
# FUZZ_MEM_KB of address space (default 4 GiB): an input that blows memory up
# fails its target instead of exhausting the machine.
ulimit -v "${FUZZ_MEM_KB:-4194304}"

# package  target (one per line; keep in sync with FAULTS.md)
targets="
./runbooks FuzzLoadRunbook
./runbooks FuzzTemplate
./runbooks FuzzParseInventory
./runbooks FuzzParseAnswers
./runbooks FuzzParseDrill
./runbooks FuzzParseOperatorConfig
./runbooks FuzzTemplateFilters
./runbooks FuzzCompareNumbers
./nodeagent FuzzKeyCodec
./nodeagent FuzzAPIHandler
./nodeagent/backup FuzzRead
./nodeagent/backup FuzzReadMetaFixedCRC
./nodeagent/token FuzzParse
./nodeagent/token FuzzParseAPIKey
./nodeagent/seal FuzzOpen
./state FuzzVerify
./state FuzzVerifyDB
./state FuzzParseApprovalMessage
./steps/transport FuzzQuote
./internal/opsig FuzzAllowedSigners
./state/evidence FuzzBundleEvents
./state/termsafe FuzzSanitize
./state/termsafe FuzzJSON
"

# Every Fuzz function in the tree must be listed above.
listed=$(echo "$targets" | awk 'NF {print $2}' | sort)
found=$(grep -rhoE '^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)' --include='*_test.go' . | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/' | sort)
if [ "$listed" != "$found" ]; then
	echo "fuzz.sh: the target list differs from the Fuzz functions in the tree:" >&2
	diff <(echo "$listed") <(echo "$found") >&2 || true
	exit 1
fi

summary=""
status=0
while read -r pkg target; do
	[ -z "$pkg" ] && continue
	printf '== fuzz %s %s (%s)\n' "$pkg" "$target" "$FUZZTIME" >&2
	log=$(mktemp)
	ok=1
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -parallel 2 "$pkg" >"$log" 2>&1 || ok=0
	if [ $ok = 0 ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
		# The fuzzing engine itself sometimes misses its own deadline on a
		# loaded machine (no input failed, nothing written): try once more.
		echo "fuzz.sh: $target: the fuzzing engine missed its deadline, no failing input; trying once more" >&2
		ok=1
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -parallel 2 "$pkg" >"$log" 2>&1 || ok=0
	fi
	if [ $ok = 0 ]; then
		cat "$log" >&2
		echo "fuzz.sh: $target in $pkg failed; the crasher is under $pkg/testdata/fuzz/$target/" >&2
		status=1
	fi
	execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | awk '{print $2}')
	summary+=$(printf '%-22s %-28s %12s\n' "$pkg" "$target" "${execs:-?}")$'\n'
	rm -f "$log"
done <<<"$targets"

printf '\n%-22s %-28s %12s\n' package target executions
printf '%s' "$summary"
exit $status
