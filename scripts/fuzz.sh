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

# fuzz_one runs one target. Go 1.26's fuzz coordinator can fail a target
# with "context deadline exceeded" as -fuzztime ends, with no failing
# input (golang/go#75804, fixed in Go 1.27; CI saw it once): a target that
# failed so, and wrote no input, runs once more. A real failure writes its
# input and is not run again.
fuzz_one() {
	local pkg=$1 target=$2 log
	log=$(mktemp)
	for attempt in 1 2; do
		# Shown as it comes, and kept in $log to look at.
		if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log"; then
			rm -f "$log"
			return 0
		fi
		if [ "$attempt" = 2 ] || ! grep -q 'context deadline exceeded' "$log" || grep -q 'Failing input written' "$log"; then
			rm -f "$log"
			return 1
		fi
		echo "== $pkg $target: the toolchain's fuzztime race (golang/go#75804), no failing input; once more"
	done
}

# Listed first, so that a package that does not build fails the script.
list=$(go test -list '^Fuzz' ./... | awk '/^Fuzz/ {names = names " " $1} /^ok/ {if (names != "") print $2 names; names = ""}')

failed=()
while read -r pkg targets; do
	for target in $targets; do
		echo "== $pkg $target for $fuzztime"
		fuzz_one "$pkg" "$target" || failed+=("$pkg $target")
	done
done <<<"$list"

if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzzing failed: %s\n' "${failed[@]}" >&2
	exit 1
fi
