#!/usr/bin/env bash
# Issue #11's pool-lookup flood against a clean capture of the same size and shape, same run:
# `poolwatch scan` CPU seconds (user+sys) and peak RSS from /usr/bin/time, median of N runs,
# and the flood/clean CPU ratio (goal: <= 3) and RSS (goal: <= 512 MiB).
#
#   cargo build --release --bin poolwatch --example flood_pcap
#   benches/flood_job.sh [CLIENTS=65536] [ROUNDS=3] [N=3] [BIN=target/release/poolwatch] [BIN2]
#
# With BIN2 (a baseline, e.g. main's binary), both are measured in the same run, interleaved
# (BIN clean, BIN2 clean, BIN flood, BIN2 flood, N times), and their flood outputs compared.
#
# The pcaps come from examples/flood_pcap.rs (tests/flood_support): CLIENTS clients
# round-robin, each round a random subdomain of pool.supportxmr.com answered with a pool
# address plus a SYN to it (flood) or the same packets under an unlisted zone (clean).
set -euo pipefail
CLIENTS=${1:-65536}
ROUNDS=${2:-3}
N=${3:-3}
BIN=${4:-target/release/poolwatch}
BIN2=${5:-}
GEN=${GEN:-target/release/examples/flood_pcap}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$GEN" "$TMP" "$CLIENTS" "$ROUNDS" > /dev/null
cat "$TMP"/*.pcap > /dev/null   # warm the page cache

# one BIN FILE TAG : one scan, appends "cpu rss" to $TMP/TAG
one() {
  /usr/bin/time -f "%U %S %M" -o "$TMP/t" "$1" scan --output json --no-progress "$2" \
    > "$TMP/out.$3" 2> "$TMP/err" || true
  read -r u s m < <(tail -n 1 "$TMP/t")
  echo "$(echo "$u + $s" | bc) $m" >> "$TMP/$3"
}
# med TAG COL : median of column COL of $TMP/TAG
med() { awk -v c="$2" '{print $c}' "$TMP/$1" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

packets=$((CLIENTS * ROUNDS * 3))
echo "# flood vs clean: $CLIENTS clients x $ROUNDS rounds = $packets packets each, N=$N, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$N"); do
  one "$BIN" "$TMP/clean.pcap" clean1
  [ -n "$BIN2" ] && one "$BIN2" "$TMP/clean.pcap" clean2
  one "$BIN" "$TMP/flood.pcap" flood1
  [ -n "$BIN2" ] && one "$BIN2" "$TMP/flood.pcap" flood2
done
report() { # NAME CLEAN_TAG FLOOD_TAG
  local c f r
  c=$(med "$2" 1); f=$(med "$3" 1); r=$(med "$3" 2)
  printf '%-5s clean cpu_s=%-6s rss=%-5s MiB | flood cpu_s=%-6s rss=%-5s MiB detections=%s | flood/clean CPU = %s (goal <= 3), flood RSS %s MiB (cap 512) | runs clean=[%s] flood=[%s]\n' \
    "$1" "$c" "$(( $(med "$2" 2) / 1024 ))" "$f" "$((r / 1024))" "$(wc -l < "$TMP/out.$3")" \
    "$(echo "scale=2; $f / $c" | bc)" "$((r / 1024))" \
    "$(awk '{printf "%s ", $1}' "$TMP/$2")" "$(awk '{printf "%s ", $1}' "$TMP/$3")"
}
report BIN clean1 flood1
if [ -n "$BIN2" ]; then
  report BIN2 clean2 flood2
  if cmp -s "$TMP/out.flood1" "$TMP/out.flood2" && cmp -s "$TMP/out.clean1" "$TMP/out.clean2"; then
    echo "outputs: BIN and BIN2 byte-identical (flood and clean)"
  else
    echo "outputs: BIN and BIN2 DIFFER"
  fi
fi
echo "# end $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
