#!/usr/bin/env bash
# Checks that the documentation says what the code does:
#  1. README.md opens with `make demo` and `make test`;
#  2. the C example in README.md is examples/hello.c, which the tests build
#     and run, so the README's example compiles;
#  3. every crash point the engine defines is listed in a module README,
#     and crashtest/points.def (the campaigns' list) names exactly those.
set -u
cd "$(dirname "$0")/.."
fail=0
head -5 README.md | grep -q 'make demo' || { echo "README.md must open with make demo"; fail=1; }
head -5 README.md | grep -q 'make test' || { echo "README.md must open with make test"; fail=1; }
awk '/^```c$/{on=1; next} /^```$/{if (on) exit} on' README.md > /tmp/walden-readme-example.$$
if ! diff -u examples/hello.c /tmp/walden-readme-example.$$; then
	echo "the C example in README.md differs from examples/hello.c"; fail=1
fi
rm -f /tmp/walden-readme-example.$$
points=$(grep -rhoE 'storage_crash_point\("[a-z0-9-]+"\)' --include=*.c \
	storage bufmgr wal undo heap btree txn recovery 2>/dev/null |
	sed -E 's/.*\("([^"]+)"\).*/\1/' | sort -u)
for p in $points; do
	if ! cat */README.md | grep -q -- "\`$p\`"; then
		echo "crash point $p is not listed in any module README"; fail=1
	fi
done
listed=$(sed -n 's/^POINT("\([^"]*\)".*/\1/p' crashtest/points.def | sort -u)
if [ "$points" != "$listed" ]; then
	echo "crashtest/points.def differs from the crash points in the code:"
	diff <(echo "$points") <(echo "$listed") | sed -n 's/^< /  missing: /p; s/^> /  gone from the code: /p'
	fail=1
fi
records=$(grep -c '^RECORD(' wal/records.def)
tools/record_table.sh > /tmp/walden-record-table.$$
awk '/^## Record types/{on=1; next} /^## /{on=0} on && /^\|/' wal/README.md |
	diff -u /tmp/walden-record-table.$$ - >/dev/null || {
	echo "wal/README.md's record table differs from wal/records.def; regenerate it with tools/record_table.sh"
	fail=1
}
rm -f /tmp/walden-record-table.$$
[ $fail -eq 0 ] && echo "docs agree with the code ($records WAL records listed)"
[ $fail -eq 0 ] && echo "docs agree with the code ($(echo $points | wc -w) crash points listed)"
exit $fail
