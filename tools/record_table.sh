#!/usr/bin/env bash
# Prints the WAL record-type table of wal/README.md from wal/records.def,
# the one list of record types. tests/check_docs.sh checks the README holds
# exactly this table; after adding a record, paste this output there.
set -eu
cd "$(dirname "$0")/.."
echo "| rmgr | id | name | owner | meaning |"
echo "|---|---|---|---|---|"
awk '
/^RMGR\(/ {
	s = $0; sub(/^RMGR\(/, "", s); split(s, f, ",")
	id = f[1] + 0; name = f[2]; gsub(/ /, "", name)
	owner = f[3]; gsub(/[ ")]/, "", owner)
	rid[name] = id; rowner[name] = owner
}
/^RECORD\(/ {
	s = $0; sub(/^RECORD\(/, "", s)
	rm = s; sub(/,.*/, "", rm); gsub(/ /, "", rm)
	s = substr(s, index(s, ",") + 1); ty = s; sub(/,.*/, "", ty); gsub(/ /, "", ty)
	s = substr(s, index(s, ",") + 1); nm = s; sub(/,.*/, "", nm); gsub(/ /, "", nm)
	s = substr(s, index(s, "\"") + 1); what = s; sub(/"\)[ \t]*$/, "", what)
	printf("| `%s` (%d) | %s | `%s` | %s | %s |\n", rm, rid[rm], ty, nm, rowner[rm], what)
}' wal/records.def
