#!/usr/bin/env bash
# Issue #16, live capture: `poolwatch serve -i lo` against tcpreplay replays of one pcap at a
# list of rates, one table row per (rate, binary, round), binaries interleaved in the same run.
#
#   benches/live_job.sh PCAP BLOCKLIST "RATES" N BIN [BIN2 ...]
#   e.g. benches/live_job.sh /tmp/fast2-1m/traffic.pcap /tmp/fast2-1m/blocklist.txt \
#        "500000 100000 50000" 3 target/release/poolwatch /tmp/meas/pw-b30
#
# RATE is tcpreplay's --pps (with --pps-multi 100, so it sends in bursts of 100 and is not
# limited by its own timer) or `top` (--topspeed). Every replay preloads the file (-K), so
# reading it costs nothing while packets are sent. Env: HISTORY=off writes `[history]
# enabled = false` into a config file; LOCK (default /tmp/bench.lock) is taken with flock for
# each single measurement (serve start to stop), so other benchmarks never overlap one (run
# the script itself under `nice -n -5`);
# SAMPLE (default 0.25) is the /metrics sampling interval, s.
#
# Columns:
#   asked     the --pps asked
#   reached   tcpreplay's own "Rated: ... pps" (packets sent / its send time)
#   sent      tcpreplay's "Actual: N packets"
#   seen      poolwatch_packets_total once the counter stops moving
#   lost      sent - seen: the honest loss. serve runs with `--bpf "not tcp port API_PORT"`
#             (the sampling's own HTTP traffic is on `lo` too), so every frame sent is expected. The kernel counter (next column) is not it: on `lo` the ring
#             also receives every outgoing copy, which libpcap discards in user space, so a
#             full ring drops (and counts) both copies.
#   kdrop     poolwatch_capture_drops_total{where="kernel"} (pcap stats ps_drop)
#   qdrop     observations lost between capture and pipeline: the service queue blocks when
#             full (back-pressure, no drop), so this is always 0 by construction; a full queue
#             shows as kernel drops. Printed so the table says it.
#   qmax      largest poolwatch_service_queue_depth sampled (capacity: poolwatch_service_queue_capacity)
#   cpu       serve's CPU seconds (user+sys, /proc/PID/stat), start to stop
#   cap/pipe  CPU seconds of the capture thread (capture-lo) and the pipeline thread
#   gen       tcpreplay's CPU seconds (user+sys) over the whole replay, preload included
#   load      1-minute load average when the replay started
set -euo pipefail
PCAP=${1:?usage: live_job.sh PCAP BLOCKLIST "RATES" N BIN [BIN2 ...]}
LIST=${2:?blocklist}
RATES=${3:?rates}
N=${4:?runs}
shift 4
[ $# -ge 1 ] || { echo "at least one binary" >&2; exit 2; }
BINS=("$@")
LOCK=${LOCK:-/tmp/bench.lock}
SAMPLE=${SAMPLE:-0.25}
HISTORY=${HISTORY:-on}
TMP=$(mktemp -d)
SERVE_PID=""
cleanup() {
  if [ -n "$SERVE_PID" ]; then kill -INT "$SERVE_PID" 2>/dev/null || true; sleep 1; kill -KILL "$SERVE_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
CFG=()
if [ "$HISTORY" = off ]; then
  printf '[history]\nenabled = false\n' > "$TMP/cfg.toml"
  CFG=(--config "$TMP/cfg.toml")
fi
cat "$PCAP" > /dev/null   # page cache

metric() { # FILE NAME_WITH_LABELS -> value (0 when absent)
  awk -v m="$2" '$1 == m {v = $2} END {printf "%d\n", (v == "" ? 0 : v)}' "$1"
}
ticks() { # PID [TASK_COMM] -> utime+stime ticks (of the process, or of its thread named COMM)
  if [ -z "${2:-}" ]; then awk '{print $14 + $15}' "/proc/$1/stat"; return; fi
  local t
  for t in /proc/"$1"/task/*; do
    if [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ]; then awk '{print $14 + $15}' "$t/stat"; return; fi
  done
  echo 0
}
HZ=$(getconf CLK_TCK)

one() { # BIN RATE ROUND
  local bin=$1 rate=$2 port db pid t0 rep reached sent seen last kd qmax cpu cap pipe gen load
  port=$((20000 + RANDOM % 20000))
  db="$TMP/db.$RANDOM"
  # The one BPF filter keeps the API's own traffic (the /metrics sampling below, on `lo` too)
  # out of the capture, so that every packet seen is one tcpreplay sent.
  "$bin" serve "${CFG[@]}" --db "$db" --listen "127.0.0.1:$port" -i lo --blocklist "$LIST" \
    --bpf "not tcp port $port" \
    --log-level warn > "$TMP/serve.out" 2> "$TMP/serve.err" &
  pid=$!
  SERVE_PID=$pid
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$port/readyz" > /dev/null 2>&1 && break
    sleep 0.1
  done
  : > "$TMP/qdepth"
  (
    while kill -0 "$pid" 2>/dev/null; do
      curl -sf "http://127.0.0.1:$port/metrics" 2>/dev/null |
        awk '$1 == "poolwatch_service_queue_depth" {print $2}' >> "$TMP/qdepth" || true
      sleep "$SAMPLE"
    done
  ) &
  local sampler=$!
  load=$(cut -d' ' -f1 /proc/loadavg)
  local speed=(--pps "$rate" --pps-multi 100)
  [ "$rate" = top ] && speed=(--topspeed)
  /usr/bin/time -f "%U %S" -o "$TMP/gen.t" timeout 300 tcpreplay -K "${speed[@]}" -i lo "$PCAP" \
    > "$TMP/rep" 2>&1 || true
  reached=$(awk '/^Rated:/ {for (i = 1; i <= NF; i++) if ($i == "pps") print int($(i-1))}' "$TMP/rep")
  sent=$(awk '/^Actual:/ {print $2}' "$TMP/rep")
  gen=$(tail -n 1 "$TMP/gen.t" | awk '{printf "%.1f", $1 + $2}')
  # Wait for the counter to stop moving (the capture thread refreshes it every second).
  last=-1
  for _ in $(seq 120); do
    sleep 1.2
    curl -sf "http://127.0.0.1:$port/metrics" > "$TMP/m" 2>/dev/null || true
    seen=$(metric "$TMP/m" poolwatch_packets_total)
    [ "$seen" = "$last" ] && break
    last=$seen
  done
  kd=$(metric "$TMP/m" 'poolwatch_capture_drops_total{where="kernel"}')
  cpu=$(ticks "$pid"); cap=$(ticks "$pid" capture-lo); pipe=$(ticks "$pid" pipeline)
  if [ -n "${THREADS:-}" ]; then # every thread's CPU ticks, on stderr
    for t in /proc/"$pid"/task/*; do echo "  $(cat "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; done |
      sort -k2 -n -r | head -n 12 >&2
  fi
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  SERVE_PID=""
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  qmax=$(sort -n "$TMP/qdepth" | tail -n 1)
  rm -rf "$db"
  printf '| %s | %s | %s | %s | %s | %s | %s | 0 | %s | %.1f | %.1f | %.1f | %s | %s |\n' \
    "$rate" "$reached" "$(basename "$bin")" "$sent" "$seen" "$((sent - seen))" "$kd" "${qmax:-0}" \
    "$(echo "$cpu / $HZ" | bc -l)" "$(echo "$cap / $HZ" | bc -l)" "$(echo "$pipe / $HZ" | bc -l)" \
    "$gen" "$load"
}

echo "# live: $(basename "$PCAP") ($(capinfos -c -M "$PCAP" 2>/dev/null | awk '/Number of packets/ {print $NF}') packets), history $HISTORY, N=$N, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| asked pps | reached pps | binary | sent | seen | lost | kdrop | qdrop | qmax | serve cpu s | capture s | pipeline s | gen cpu s | load |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for r in $(seq "$N"); do
  for rate in $RATES; do
    for bin in "${BINS[@]}"; do
      exec 9> "$LOCK"
      flock 9
      one "$bin" "$rate" "$r"
      flock -u 9
      exec 9>&-
    done
  done
done
