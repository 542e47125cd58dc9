#!/usr/bin/env bash
# API load benchmark: the real `poolwatch serve` (release build) on a sled database holding 10k
# stored detections, measured with wrk from the same machine.
#
#   benches/api_load.sh                      # needs wrk (apt-get install wrk)
#   BIN=/path/poolwatch BASE=/path/other benches/api_load.sh   # two binaries, same run
#
# 1. saturation: wrk -t1 -c32 -d10s against /healthz (the baseline: no store, no JSON work),
#    GET /api/v1/detections?limit=50 and GET /api/v1/check?name=pool.supportxmr.com;
# 2. fixed rate, ~1,000 requests/s in total: wrk -t1 -c32 with a Lua `delay()` of 32 ms per
#    connection (wrk2 is not packaged in Debian), reporting p50/p99 latency. wrk's latency is
#    measured from the moment a request is written, so the pacing delay is not in it.
# With BASE set, each binary serves its own copy of the same database in turn (BIN, BASE, BIN,
# BASE: two rounds), so their numbers come from the same run. Without BIN the release build
# is made first. Numbers go to docs/service.md ("Load") and docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)" >&2; exit 1; }

DURATION=${DURATION:-10s}
N=${N:-10000}
SEED=${SEED:-target/release/examples/seed_detections}
WORK=$(mktemp -d /tmp/poolwatch-api-load.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin poolwatch --example seed_detections
  BIN=target/release/poolwatch
fi
"$SEED" "$WORK/db0" "$N"

cat > "$WORK/pace.lua" <<'LUA'
-- ~1,000 req/s over 32 connections: each waits 32 ms before its next request.
function delay()
  return 32
end
LUA

ROUTES=("/healthz" "/api/v1/detections?limit=50" "/api/v1/check?name=pool.supportxmr.com")

# one BINARY LABEL: serve a fresh copy of the seeded database with BINARY, run both phases.
one() {
  rm -rf "$WORK/db" && cp -a "$WORK/db0" "$WORK/db"
  local port api
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$1" --log-level warn serve --listen "127.0.0.1:$port" --db "$WORK/db" \
      --retention-days 0 2>"$WORK/serve.log" &
  PID=$!
  api="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -sf "$api/readyz" >/dev/null && break; sleep 0.1; done
  local count
  count=$(curl -s "$api/api/v1/detections?limit=1000" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
  echo "== $2 ($1): service on $api, first page holds $count detections (of $N stored), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "-- saturation: wrk -t1 -c32 -d$DURATION"
  run "$api" ""
  echo "-- fixed rate (~1,000 req/s): wrk -t1 -c32 -d$DURATION -s pace.lua"
  run "$api" "-s $WORK/pace.lua"
  echo "service CPU time (user+sys, s): $(ps -o times= -p "$PID" | tr -d ' ')"
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=
  echo
}

run() { # API EXTRA_WRK_ARGS
  local r out rps p50 p99 errs
  for r in "${ROUTES[@]}"; do
    # shellcheck disable=SC2086
    out=$(wrk -t1 -c32 -d"$DURATION" --latency $2 "$1$r")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(grep -E "Non-2xx|Socket errors" <<<"$out" || true)
    printf "%-45s %10s req/s   p50 %8s   p99 %8s  %s\n" "$r" "$rps" "$p50" "$p99" "$errs"
  done
}

if [ -n "${BASE:-}" ]; then
  for round in 1 2; do
    one "$BIN" "BIN, round $round"
    one "$BASE" "BASE, round $round"
  done
else
  one "$BIN" "BIN"
fi
