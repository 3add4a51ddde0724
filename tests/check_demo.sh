#!/usr/bin/env bash
# Runs `walden demo` (a real killed writer plus a simulated power loss) over
# many seeds; the demo itself checks every page against the fsyncs made and
# the materialiser's plan and exits non-zero on any disagreement.
set -u
bin=${WALDEN_BIN:-build/release/walden}
tmp=$(mktemp -d)
fail=0
for seed in $(seq 1 20); do
	if ! WALDEN_CRASH_QUIET=1 "$bin" demo "$tmp/db$seed" --seed "$seed" --pages 128 >"$tmp/out" 2>&1; then
		echo "demo failed with seed $seed:"; cat "$tmp/out"; fail=1
	fi
	grep -q ' 0 disagree' "$tmp/out" || fail=1
done
rm -rf "$tmp"
[ $fail -eq 0 ] && echo "demo: 20 seeds, every page as the fault model allows"
exit $fail
