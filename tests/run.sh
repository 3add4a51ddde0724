#!/usr/bin/env bash
# Runs test binaries of one build flavour, prints each one's output and a
# closing "MODE: N passed, N failed" line; writes the counts to
# build/MODE/test-results for tests/summary.sh. Exits 1 if any test failed.
#   tests/run.sh MODE BINARY...
# WALDEN_TEST_JOBS (default: the number of CPUs, at most 4) binaries run at
# once; many suites wait on fsync more than they compute. Each one's output
# is kept in a file and printed whole, in the order given, so the log reads
# the same as a serial run.
set -u
mode=$1; shift
passed=0; failed=0; failed_bins=()
export WALDEN_CRASH_QUIET=1
jobs=${WALDEN_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
[ "$jobs" -gt 4 ] && jobs=4
[ "$jobs" -lt 1 ] && jobs=1
bins=("$@")
logs=(); pids=()
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# start BINARY's run in the background; its log and exit status in $tmp/N.*
start() {
	local i=$1 bin=${bins[$1]}
	(
		case "$bin" in
		*/examples/*) # examples take a database directory: give each a fresh one
			scratch=$(mktemp -d)
			timeout 900 "$bin" "$scratch/db" >"$tmp/$i.log" 2>&1
			echo $? >"$tmp/$i.rc"
			rm -rf "$scratch" ;;
		*)
			timeout 900 "$bin" >"$tmp/$i.log" 2>&1
			echo $? >"$tmp/$i.rc" ;;
		esac
	) &
	pids[$i]=$!
}

next=0
for ((i = 0; i < ${#bins[@]}; i++)); do
	while [ "$next" -lt "${#bins[@]}" ] && [ "$next" -lt $((i + jobs)) ]; do
		start "$next"
		next=$((next + 1))
	done
	wait "${pids[$i]}"
	bin=${bins[$i]}; log=$tmp/$i.log
	rc=$(cat "$tmp/$i.rc" 2>/dev/null || echo 1)
	echo "=== $mode: $bin"
	cat "$log"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\..*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s).*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	if ! grep -q '^\[==========\]' "$log"; then
		# not a cmocka suite (an example program): one test, judged by exit code
		if [ "$rc" -eq 0 ]; then p=1; else f=1; fi
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
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
