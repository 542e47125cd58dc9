#!/usr/bin/env bash
# API load benchmark: the real `poolwatch serve` (release build) on a sled database holding 10k
# stored detections, measured with wrk from the same machine.
#
#   benches/api_load.sh            # needs wrk (apt-get install wrk)
#
# 1. saturation: wrk -t1 -c32 -d10s against /healthz (the baseline: no store, no JSON work),
#    GET /api/v1/detections?limit=50 and GET /api/v1/check?name=pool.supportxmr.com;
# 2. fixed rate, ~1,000 requests/s in total: wrk -t1 -c32 with a Lua `delay()` of 32 ms per
#    connection (wrk2 is not packaged in Debian), reporting p50/p99 latency. wrk's latency is
#    measured from the moment a request is written, so the pacing delay is not in it.
# Numbers go to docs/service.md ("Load"). Work files live under a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)" >&2; exit 1; }

DURATION=${DURATION:-10s}
N=${N:-10000}
WORK=$(mktemp -d /tmp/poolwatch-api-load.XXXXXX)
trap 'kill "$PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release --quiet --bin poolwatch --example seed_detections
target/release/examples/seed_detections "$WORK/db" "$N"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/poolwatch --log-level warn serve --listen "127.0.0.1:$PORT" --db "$WORK/db" \
    --retention-days 0 2>"$WORK/serve.log" &
PID=$!
API="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -sf "$API/readyz" >/dev/null && break; sleep 0.1; done
COUNT=$(curl -s "$API/api/v1/detections?limit=1000" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
echo "service on $API, first page holds $COUNT detections (of $N stored)"

cat > "$WORK/pace.lua" <<'LUA'
-- ~1,000 req/s over 32 connections: each waits 32 ms before its next request.
function delay()
  return 32
end
LUA

ROUTES=("/healthz" "/api/v1/detections?limit=50" "/api/v1/check?name=pool.supportxmr.com")
echo
echo "== saturation: wrk -t1 -c32 -d$DURATION"
for r in "${ROUTES[@]}"; do
  out=$(wrk -t1 -c32 -d"$DURATION" --latency "$API$r")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(grep -E "Non-2xx|Socket errors" <<<"$out" || true)
  printf "%-45s %10s req/s   p50 %8s   p99 %8s  %s\n" "$r" "$rps" "$p50" "$p99" "$errs"
done

echo
echo "== fixed rate (~1,000 req/s): wrk -t1 -c32 -d$DURATION -s pace.lua"
for r in "${ROUTES[@]}"; do
  out=$(wrk -t1 -c32 -d"$DURATION" --latency -s "$WORK/pace.lua" "$API$r")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(grep -E "Non-2xx|Socket errors" <<<"$out" || true)
  printf "%-45s %10s req/s   p50 %8s   p99 %8s  %s\n" "$r" "$rps" "$p50" "$p99" "$errs"
done
echo
echo "service CPU time (user+sys, s): $(ps -o times= -p "$PID" | tr -d ' ')"
