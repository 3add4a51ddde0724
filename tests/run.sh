#!/usr/bin/env bash
# Runs test binaries of one build flavour, prints each one's output and a
# closing "MODE: N passed, N failed" line; writes the counts to
# build/MODE/test-results for tests/summary.sh. Exits 1 if any test failed.
#   tests/run.sh MODE BINARY...
set -u
mode=$1; shift
passed=0; failed=0; failed_bins=()
export WALDEN_CRASH_QUIET=1
for bin in "$@"; do
	log=$(mktemp)
	echo "=== $mode: $bin"
	case "$bin" in
	*/examples/*) # examples take a database directory: give each a fresh one
		scratch=$(mktemp -d)
		timeout 900 "$bin" "$scratch/db" >"$log" 2>&1
		rc=$?
		rm -rf "$scratch" ;;
	*)
		timeout 900 "$bin" >"$log" 2>&1
		rc=$? ;;
	esac
	cat "$log"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\..*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s).*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	if ! grep -q '^\[==========\]' "$log"; then
		# not a cmocka suite (an example program): one test, judged by exit code
		if [ $rc -eq 0 ]; then p=1; else f=1; fi
	elif [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # crashed or timed out without cmocka's verdict
	fi
	passed=$((passed + p)); failed=$((failed + f))
	[ "$f" -gt 0 ] && failed_bins+=("$bin")
	rm -f "$log"
done
mkdir -p "build/$mode"
echo "$passed $failed" > "build/$mode/test-results"
for b in "${failed_bins[@]+"${failed_bins[@]}"}"; do echo "FAILED: $b"; done
echo "$mode: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
