#!/usr/bin/env bash
# A/B: two poolwatch binaries on the same workload, runs interleaved (A B A B …) so that the
# machine's noise falls on both alike. CPU seconds (user+sys) and peak RSS from /usr/bin/time,
# median of N runs each, and the ratio B/A per input (< 1: B is cheaper).
#
#   python3 ../shared/bench/gen/dnsgen.py --preset large --packets 1000000 --out /tmp/1m
#   benches/ab_scan.sh OLD_BIN NEW_BIN /tmp/1m [N=5]
#
# Inputs: the capture and the three resolver logs of the workload, each with its blocklist.
# (scan exits 1 when it found something, so /usr/bin/time adds a status line: the last line is read.)
# Both binaries must accept `scan --output json --no-progress --blocklist FILE INPUT`. The
# verdicts of A and B are compared too (the sorted client, pool, stage triples; needs jq), so a "faster" B that
# finds less is caught.
set -euo pipefail
A=${1:?usage: ab_scan.sh BIN_A BIN_B WORKLOAD_DIR [N]}
B=${2:?}
D=${3:?}
N=${4:-5}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "# A=$A"
echo "# B=$B"
echo "# $D, N=$N, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
printf '%-14s %10s %10s %8s %9s %9s %8s\n' input A_cpu_s B_cpu_s B/A A_rss_MB B_rss_MB same_out
for input in traffic.pcap bind-query.log unbound.log dnsmasq.log; do
  [ -e "$D/$input" ] || continue
  cat "$D/$input" > /dev/null
  : > "$TMP/a"; : > "$TMP/b"
  for _ in $(seq "$N"); do
    for side in a b; do
      bin=$A; [ "$side" = b ] && bin=$B
      /usr/bin/time -f "%U %S %M" -o "$TMP/t" "$bin" scan --output json --no-progress \
        --blocklist "$D/blocklist.txt" "$D/$input" > "$TMP/out.$side" 2> "$TMP/err" || true
      tail -n 1 "$TMP/t" | awk '{printf "%.3f %d\n", $1 + $2, $3}' >> "$TMP/$side"
    done
  done
  med() { sort -n -k"$2" "$1" | awk -v k="$2" '{v[NR]=$k} END {print v[int((NR+1)/2)]}'; }
  ac=$(med "$TMP/a" 1); bc=$(med "$TMP/b" 1); ar=$(med "$TMP/a" 2); br=$(med "$TMP/b" 2)
  # Same verdicts: the sorted (client, pool, stage) triples of both outputs.
  key() { jq -r '[.client_ip, .pool_domain, .stage] | @tsv' "$1" | sort; }
  same=no; [ "$(key "$TMP/out.a" | md5sum)" = "$(key "$TMP/out.b" | md5sum)" ] && same=yes
  awk -v i="$input" -v a="$ac" -v b="$bc" -v ar="$ar" -v br="$br" -v s="$same" \
    'BEGIN {printf "%-14s %10s %10s %8.2f %9d %9d %8s\n", i, a, b, b / a, ar / 1024, br / 1024, s}' 
done
