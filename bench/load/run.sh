#!/usr/bin/env bash
# Tollgate load benchmark: the same wrk load directly against a fake OpenAI upstream and through
# Tollgate, on this machine (127.0.0.1 only); prints one comparison table and writes
# bench/results/<UTC>/results.json + results.md. See bench/load/README.md.
#
#   bench/load/run.sh                 default run (~4-5 min): 10 s per point, c=1,8,64, json + stream
#   bench/load/run.sh --quick         smoke run (~2 min)
#   bench/load/run.sh --duration 20 --gw-cpus 0 --load-cpus 1
#   bench/load/run.sh --no-build      use the existing Release builds
#   bench/load/run.sh --storage postgres --limited                  shared path: private PostgreSQL
#   bench/load/run.sh --storage postgres --limiter redis --limited  ... with the limit counters in Redis
#   bench/load/run.sh --help          all options
#
# Steps: install wrk/curl/taskset/python3 (and postgresql, redis-server for the shared path) from
# Debian if missing; build the gateway and the fake upstream in Release; then
# bench/load/loadbench.py starts the upstream (and PostgreSQL, Redis) and the gateway (each in its
# own process group, pinned with taskset), creates a client key, warms up, measures, and stops
# every process it started (also on Ctrl-C).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

no_build=0 storage=sqlite limiter=database prev=
for a in "$@"; do
  case "$prev" in
    --storage) storage="$a" ;;
    --limiter) limiter="$a" ;;
  esac
  case "$a" in
    -h|--help) sed -n '2,18p' "$0"; echo; exec python3 "$HERE/loadbench.py" --help ;;
    --no-build) no_build=1 ;;
    --storage=*) storage="${a#*=}" ;;
    --limiter=*) limiter="${a#*=}" ;;
  esac
  prev="$a"
done

say() { echo "[run.sh] $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

# --- tools from Debian (only what is missing)
need=()
command -v wrk     >/dev/null || need+=(wrk)
command -v curl    >/dev/null || need+=(curl)
command -v taskset >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
# the shared path: loadbench.py runs its own private servers from these packages' binaries
if [ "$storage" = postgres ] && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  need+=(postgresql)
fi
if [ "$limiter" = redis ] && ! command -v redis-server >/dev/null; then
  need+=(redis-server)
fi
if [ ${#need[@]} -gt 0 ]; then
  say "installing from Debian: ${need[*]}"
  as_root timeout 300 apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive timeout 900 \
    apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
command -v dotnet >/dev/null || { say "dotnet SDK not found"; exit 1; }

# --- Release builds (no build servers left behind: node reuse and the compiler server are off)
if [ "$no_build" = 0 ]; then
  build() {
    say "dotnet build -c Release $1"
    DOTNET_CLI_USE_MSBUILD_SERVER=0 dotnet build -c Release "$REPO/$1" -nologo -v q \
      -nodeReuse:false -p:UseSharedCompilation=false >"$2" 2>&1 || {
        grep -E ': (error|warning) ' "$2" | sort -u | head -40 >&2
        say "build of $1 failed (full log: $2)"; exit 1; }
  }
  logdir="$(mktemp -d /tmp/tollgate-bench-build.XXXXXX)"
  build bench/Tollgate.Bench.Upstream "$logdir/upstream.log"
  build src/Tollgate.Server "$logdir/server.log"
  rm -rf "$logdir"
fi

cd "$REPO"
exec python3 "$HERE/loadbench.py" "$@"
