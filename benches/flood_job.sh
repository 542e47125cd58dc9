#!/usr/bin/env bash
# Issue #11's pool-lookup flood against a clean capture of the same size and shape, same run:
# `poolwatch scan` CPU seconds (user+sys) and peak RSS from /usr/bin/time, median of N runs,
# and the flood/clean CPU ratio (goal: <= 3) and RSS (goal: <= 512 MiB).
#
#   cargo build --release --bin poolwatch --example flood_pcap
#   benches/flood_job.sh [CLIENTS=65536] [ROUNDS=3] [N=3] [BIN=target/release/poolwatch]
#
# The pcaps come from examples/flood_pcap.rs (tests/flood_support): CLIENTS clients
# round-robin, each round a random subdomain of pool.supportxmr.com answered with a pool
# address plus a SYN to it (flood) or the same packets under an unlisted zone (clean).
set -euo pipefail
CLIENTS=${1:-65536}
ROUNDS=${2:-3}
N=${3:-3}
BIN=${4:-target/release/poolwatch}
GEN=${GEN:-target/release/examples/flood_pcap}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$GEN" "$TMP" "$CLIENTS" "$ROUNDS" > /dev/null
cat "$TMP"/*.pcap > /dev/null   # warm the page cache

# run NAME FILE : prints "NAME median_cpu_s median_rss_kb" and sets LAST_CPU
run() {
  local name=$1 file=$2 cpus=() rss=()
  for _ in $(seq "$N"); do
    /usr/bin/time -f "%U %S %M" -o "$TMP/t" "$BIN" scan --output json --no-progress "$file" \
      > "$TMP/out" 2> "$TMP/err" || true
    read -r u s m < <(tail -n 1 "$TMP/t")
    cpus+=("$(echo "$u + $s" | bc)"); rss+=("$m")
  done
  LAST_CPU=$(printf '%s\n' "${cpus[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  LAST_RSS=$(printf '%s\n' "${rss[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-6s cpu_s=%-7s rss_kb=%-8s detections=%s runs=[%s]\n' "$name" "$LAST_CPU" "$LAST_RSS" \
    "$(wc -l < "$TMP/out")" "${cpus[*]}"
}

packets=$((CLIENTS * ROUNDS * 3))
echo "# flood vs clean: $CLIENTS clients x $ROUNDS rounds = $packets packets each, N=$N, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
run clean "$TMP/clean.pcap"; CLEAN=$LAST_CPU
run flood "$TMP/flood.pcap"; FLOOD=$LAST_CPU; FLOOD_RSS=$LAST_RSS
echo "ratio flood/clean CPU = $(echo "scale=2; $FLOOD / $CLEAN" | bc) (goal <= 3); flood max RSS $((FLOOD_RSS / 1024)) MiB (cap 512)"
