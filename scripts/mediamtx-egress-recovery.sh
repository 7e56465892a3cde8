#!/usr/bin/env bash
# Egress recovery with MediaMTX as the WHIP target (issue 16): whipgate
# publishes its test source's main layer to a MediaMTX on loopback; the
# target is killed (SIGKILL, or SIGTERM with KILL=TERM) and started again
# after DOWN seconds; the script prints, per run, when whipgate's API
# showed the egress down and how long after the target was back it showed
# it connected again. `whipgate bench -scenario egress-recovery` measures
# the same with a second whipgate as the target.
#
#   MEDIAMTX=/path/to/mediamtx scripts/mediamtx-egress-recovery.sh [runs]
#
# MediaMTX is not a build or test dependency of whipgate: this script is
# how BENCHMARKS.md's MediaMTX figures were made. All traffic stays on
# 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-3}
down=${DOWN:-3}
sig=${KILL:-KILL}
mediamtx=${MEDIAMTX:?set MEDIAMTX to a mediamtx binary}
for tool in curl jq; do
	command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT

# Free TCP and UDP ports on loopback, from the kernel.
port() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, getattr(socket, sys.argv[1])); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"; }
mtx_http=$(port SOCK_STREAM) mtx_udp=$(port SOCK_DGRAM) wg_http=$(port SOCK_STREAM) wg_udp=$(port SOCK_DGRAM)

cat >"$dir/mediamtx.yml" <<EOF
logLevel: warn
rtsp: false
rtmp: false
hls: false
srt: false
webrtc: true
webrtcAddress: 127.0.0.1:$mtx_http
webrtcLocalUDPAddress: 127.0.0.1:$mtx_udp
webrtcIPsFromInterfaces: false
webrtcAdditionalHosts: [127.0.0.1]
paths:
  all_others:
EOF

start_target() {
	"$mediamtx" "$dir/mediamtx.yml" >>"$dir/mediamtx.log" 2>&1 &
	target=$!
	pids+=("$target")
	until curl -s -o /dev/null "http://127.0.0.1:$mtx_http/"; do sleep 0.02; done
}

go build -o "$dir/whipgate" ./cmd/whipgate
"$dir/whipgate" -listen "127.0.0.1:$wg_http" -udp "127.0.0.1:$wg_udp" -state-dir "$dir/state" -log-level warn >"$dir/whipgate.log" 2>&1 &
pids+=("$!")
wg="http://127.0.0.1:$wg_http"
until curl -s -o /dev/null "$wg/healthz"; do sleep 0.05; done
start_target

curl -sS --fail-with-body -H 'Content-Type: application/json' -X POST "$wg/api/v1/egress" \
	-d "{\"id\": \"mtx\", \"stream\": \"test\", \"url\": \"http://127.0.0.1:$mtx_http/test/whip\", \"layers\": [\"main\"]}" >/dev/null

now() { date +%s%3N; }
state() { curl -s "$wg/api/v1/egress/mtx" | jq -r .state; }
wait_state() { # wait_state <want|!want> <limit ms>: prints ms waited, or - on timeout
	local want=$1 limit=$2 t0 s
	t0=$(now)
	while :; do
		s=$(state)
		if [[ $want == !* && $s != "${want#!}" ]] || [[ $want != !* && $s == "$want" ]]; then
			echo $(($(now) - t0))
			return
		fi
		(($(now) - t0 > limit)) && { echo -; return; }
		sleep 0.02
	done
}

printf 'run signal down_s detect_ms connected_ms state_after\n'
wait_state connected 20000 >/dev/null
for i in $(seq "$runs"); do
	sleep 2
	kill "-$sig" "$target"
	wait "$target" 2>/dev/null || true
	detect=$(wait_state '!connected' 10000)
	rest=$((down * 1000 - ${detect/-/0}))
	((rest > 0)) && sleep "$(printf '%d.%03d' $((rest / 1000)) $((rest % 1000)))"
	start_target
	back=$(wait_state connected 30000)
	printf '%s %s %s %s %s %s\n' "$i" "$sig" "$down" "$detect" "$back" "$(state)"
done
