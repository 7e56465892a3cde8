#!/usr/bin/env bash
# Runs every test of whipgate, installing what the tests need first:
# ffmpeg, GStreamer, Chromium, curl and gcc from Debian, Pebble (a real ACME
# server) and the Go modules. Safe to run again: installed parts are skipped.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v gst-launch-1.0 >/dev/null || need_apt+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v curl >/dev/null || need_apt+=(curl)
command -v systemd-analyze >/dev/null || need_apt+=(systemd) # verifies examples/systemd
command -v gcc >/dev/null || need_apt+=(gcc libc6-dev) # the race detector needs cgo
if [ ${#need_apt[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	echo "installing: ${need_apt[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${need_apt[@]}" >/dev/null
fi

export PATH="$PATH:$(go env GOPATH)/bin"
command -v pebble >/dev/null || go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1

go mod download
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...
# whipgate builds wherever Go does: Linux keeps GSO, GRO, recvmmsg and
# forced buffers; other systems get plain sockets (whip/rtc/udp).
for target in darwin/arm64 linux/arm64; do
	GOOS=${target%/*} GOARCH=${target#*/} go build -o /dev/null ./...
done
# The release binaries (static, linux/amd64 and linux/arm64) build as the
# release script makes them.
release_dir=$(mktemp -d)
scripts/release.sh ci-check "$release_dir" >/dev/null
test -x "$release_dir/whipgate-ci-check-linux-arm64" && test -s "$release_dir/SHA256SUMS"
# ... and name the commit they were built from.
if rev=$(git rev-parse HEAD 2>/dev/null); then
	"$release_dir/whipgate-ci-check-linux-amd64" version | grep -q "revision $rev" ||
		{ echo "the release binary does not name commit $rev" >&2; exit 1; }
fi
rm -rf "$release_dir"
# Browser tests keep their screenshots here (the dashboard, the player),
# for a person or a CI job to look at after the run.
export WHIPGATE_ARTIFACTS="${WHIPGATE_ARTIFACTS:-$PWD/artifacts}"
# With the race detector: the media path is all goroutines, and a race in
# the trickle PATCH handler showed only under it (about 2 minutes either way).
go test -race -count=1 -timeout 15m "$@" ./...
# Each fuzz target for 2 s past its corpus (the line above replays the
# seeds and testdata/fuzz), with the same script that runs them longer.
scripts/fuzz.sh 2s
