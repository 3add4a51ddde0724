#!/usr/bin/env bash
# Adds up the per-flavour results written by tests/run.sh and prints the
# closing line of `make test`.
set -u
passed=0; failed=0
for d in "$@"; do
	read -r p f < "$d/test-results" || { echo "missing $d/test-results"; exit 1; }
	passed=$((passed + p)); failed=$((failed + f))
done
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
