#!/usr/bin/env bash
# Run the shared peer rig (/work/shared/bench/peers.sh, nginx+Lua fake upstream, 3 interleaved
# rounds, optional peer gateways in the same table) against Tollgate.
#
#   bench/load/peer-rig.sh                          direct vs Tollgate (~8 min)
#   bench/load/peer-rig.sh --with-peers             + Portkey, nullplatform, nginx-proxy (~25 min)
#   bench/load/peer-rig.sh --duration 3 --repeats 1 --warmup 1   smoke run
#   PEER_RIG=/path/to/peers.sh bench/load/peer-rig.sh ...
#
# The gateway is started here (pinned with taskset to GW_CPUS, default 0, like the rig's own
# layout), a client key is created, and the rig measures it as an already running gateway (it finds
# the PID by port for CPU/RSS and does not stop it). This script stops the gateway afterwards, also
# on Ctrl-C. Extra arguments go to `peers.sh run`. Results land in the rig's results/ folder.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
RIG="${PEER_RIG:-/work/shared/bench/peers.sh}"
GW_CPUS="${GW_CPUS:-0}"
PORT="${GW_PORT:-5080}"
DLL="$REPO/artifacts/bin/Tollgate.Server/release/tollgate.dll"

[ -x "$RIG" ] || { echo "peer rig not found: $RIG (set PEER_RIG)" >&2; exit 1; }
if curl -s --noproxy '*' -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null; then
  echo "127.0.0.1:$PORT is already in use" >&2; exit 1
fi

if [ "${NO_BUILD:-0}" != 1 ]; then
  DOTNET_CLI_USE_MSBUILD_SERVER=0 dotnet build -c Release "$REPO/src/Tollgate.Server" -nologo -v q \
    -nodeReuse:false -p:UseSharedCompilation=false >&2
fi

work="$(mktemp -d /tmp/tollgate-peer-rig.XXXXXX)"
gw_pid=""
cleanup() {
  trap - EXIT INT TERM HUP
  if [ -n "$gw_pid" ] && kill -0 "$gw_pid" 2>/dev/null; then
    kill -TERM -- "-$gw_pid" 2>/dev/null || true          # its own process group (setsid below)
    for _ in $(seq 50); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$gw_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

export TOLLGATE_ADMIN_KEY="tga-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export BENCH_UPSTREAM_KEY=sk-bench
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY
# The config points at 127.0.0.1:19080, where the rig starts its fake upstream.
setsid taskset -c "$GW_CPUS" dotnet "$DLL" serve --config "$HERE/tollgate.bench.json" \
  --urls "http://127.0.0.1:$PORT" --data-dir "$work/data" >"$work/gateway.log" 2>&1 &
gw_pid=$!
for _ in $(seq 300); do
  curl -sf --noproxy '*' -o /dev/null "http://127.0.0.1:$PORT/health" && break
  kill -0 "$gw_pid" 2>/dev/null || { tail -30 "$work/gateway.log" >&2; exit 1; }
  sleep 0.2
done
key="$(curl -sf --noproxy '*' -X POST "http://127.0.0.1:$PORT/admin/keys" \
  -H "Authorization: Bearer $TOLLGATE_ADMIN_KEY" -H 'Content-Type: application/json' -d '{"name":"peer-rig"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"

"$RIG" run --name tollgate --url "http://127.0.0.1:$PORT/v1" -H "Authorization: Bearer $key" \
  --model gpt-4o-mini --pid "$gw_pid" "$@"
