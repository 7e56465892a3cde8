#!/usr/bin/env bash
# Builds whipgate's release binaries: static (no cgo), for linux/amd64 (x86
# mini PCs) and linux/arm64 (Jetson and other ARM boards), with the version
# stamped in (whipgate version, /api/v1/info, whipgate_build_info), plus
# SHA256SUMS. Needs only Go; cross-compiles from any machine.
#
#   scripts/release.sh [version] [out-dir]
#
# version defaults to `git describe --tags --always --dirty`, out-dir to dist.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
out=${2:-dist}
mkdir -p "$out"

for target in linux/amd64 linux/arm64; do
	os=${target%/*} arch=${target#*/}
	bin="$out/whipgate-$version-$os-$arch"
	echo "building $bin"
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=true \
		-ldflags "-s -w -X whipgate/cmd.version=$version" \
		-o "$bin" ./cmd/whipgate
done

(cd "$out" && sha256sum whipgate-"$version"-* > SHA256SUMS)
cat "$out/SHA256SUMS"
