#!/usr/bin/env bash
# The reliability and security suite (test/reliability) with bounded fuzzing
# of every Fuzz target and the token-timing benchmark; writes the figures of
# the run to docs/reliability.md (generated, never edited by hand).
#
#   scripts/reliability.sh          # full sizes (DG_REL_FULL=1): make reliability
#   scripts/reliability.sh short    # the short variant:          make reliability-short
#
# Sizes can be overridden one by one (DG_REL_KILL_ROUNDS, DG_REL_SOAK, ...,
# see test/reliability/main_test.go); FUZZTIME is per target.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-full}"
if [ "$mode" = full ]; then
  export DG_REL_FULL=1
  fuzztime="${FUZZTIME:-60s}"
  benchtime="${BENCHTIME:-3000x}"
else
  unset DG_REL_FULL
  fuzztime="${FUZZTIME:-10s}"
  benchtime="${BENCHTIME:-300x}"
fi
report="${DG_RELIABILITY_REPORT:-docs/reliability.md}"
case "$report" in /*) ;; *) report="$PWD/$report" ;; esac # go test runs in the package dir
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fuzzlog="$work/fuzz.log"
: >"$fuzzlog"
failed=0

# 1. Every Fuzz target, bounded. A crasher is written by go test to the
#    package's testdata/fuzz/<Target>/ and stays there as a regression input.
while IFS= read -r file; do
  dir=$(dirname "$file")
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    echo "fuzz: $dir $target ($fuzztime)"
    out="$work/$target.out"
    if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "./$dir" >"$out" 2>&1; then
      execs=$(grep -oE 'execs: [0-9]+' "$out" | tail -1 | grep -oE '[0-9]+' || echo '?')
      corpus=$(grep -oE 'total: [0-9]+' "$out" | tail -1 | grep -oE '[0-9]+' || echo '?')
      echo "$dir $target $fuzztime ok ${execs} execs, ${corpus} corpus entries" >>"$fuzzlog"
    else
      failed=1
      crasher=$(grep -oE 'testdata/fuzz/[^ ]+' "$out" | head -1 || true)
      echo "$dir $target $fuzztime FAIL crasher kept: $dir/${crasher:-see output}" >>"$fuzzlog"
      tail -30 "$out"
    fi
  done
done < <(git ls-files '*_test.go' 2>/dev/null || find . -name '*_test.go')

# 2. Token lookup timing by matching prefix (statistical, never asserted).
benchlog="$work/bench.log"
go test -run '^$' -bench 'TokenLookupByPrefix' -benchtime "$benchtime" ./test/reliability/ >"$benchlog" 2>&1 || failed=1
grep -E '^Benchmark' "$benchlog" || cat "$benchlog"

# 3. The suite; it writes the report as it goes.
export DG_RELIABILITY_REPORT="$report" DG_RELIABILITY_FUZZLOG="$fuzzlog" DG_RELIABILITY_BENCHLOG="$benchlog"
export DG_RELIABILITY_BENCHTIME="$benchtime"
go test -count=1 -timeout 120m -v ./test/reliability/ 2>&1 | tee "$work/suite.log" | grep -E '^(=== RUN|--- |PASS|FAIL|ok|    )' || true
if ! grep -qE '^ok ' "$work/suite.log"; then
  failed=1
fi
echo "reliability: report written to $report"
exit "$failed"
