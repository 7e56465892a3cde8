#!/usr/bin/env bash
# Runs every fuzz target of whipgate for a while, one after another
# (go test -fuzz takes one package and one target at a time):
#
#   scripts/fuzz.sh [duration]    duration per target, default 5m
#
# An input that fails is written to its package's testdata/fuzz/<target>/,
# where plain go test replays it: commit it with the fix. The script goes
# on with the other targets and fails at the end if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-5m}

failed=()
while read -r pkg targets; do
	for target in $targets; do
		echo "== $pkg $target for $fuzztime"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" || failed+=("$pkg $target")
	done
done < <(go test -list '^Fuzz' ./... | awk '/^Fuzz/ {names = names " " $1} /^ok/ {if (names != "") print $2 names; names = ""}')

if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzzing failed: %s\n' "${failed[@]}" >&2
	exit 1
fi
