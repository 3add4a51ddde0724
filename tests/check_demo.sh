#!/usr/bin/env bash
# Runs `walden demo` (transactions, a writer killed with one open, recovery,
# every key checked against what was committed) and `walden demo-wal` (a
# real killed writer plus a simulated power loss) over many seeds; each
# checks its result itself and exits non-zero on any disagreement.
set -u
bin=${WALDEN_BIN:-build/release/walden}
tmp=$(mktemp -d)
fail=0
for seed in $(seq 1 20); do
	if ! WALDEN_CRASH_QUIET=1 "$bin" demo-wal "$tmp/db$seed" --seed "$seed" --pages 128 >"$tmp/out" 2>&1; then
		echo "demo failed with seed $seed:"; cat "$tmp/out"; fail=1
	fi
	grep -q ' 0 disagree' "$tmp/out" || fail=1
done
if ! "$bin" demo "$tmp/main" >"$tmp/out" 2>&1 || ! grep -q 'every one as committed' "$tmp/out" ||
	! grep -q '== undo ==' "$tmp/out"; then
	echo "walden demo failed:"; cat "$tmp/out"; fail=1
fi
rm -rf "$tmp"
[ $fail -eq 0 ] && echo "demo: recovery as committed; demo-wal: 20 seeds, every page as the fault model allows"
exit $fail
