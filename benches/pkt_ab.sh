#!/usr/bin/env bash
# Same-run CPU seconds of `scan --threads 1` on one capture for several binaries, interleaved
# per round with the bare libpcap loop (bench/baselines/pcap_count.c, cc -O2); medians and the
# ratio to the loop. Each round's JSON output is compared with the first binary's (cmp).
# Usage: flock /tmp/bench.lock nice -n -5 benches/pkt_ab.sh DIR N BIN... (DIR holds
# traffic.pcap and blocklist.txt). Issue #16; docs/performance.md, "packet path, fourth pass".
set -u
D=$1; N=$2; shift 2
BINS=("$@"); T=$(mktemp -d)
cc -O2 -o "$T/pc" "$(dirname "$0")/../../shared/bench/baselines/pcap_count.c" -lpcap
cat "$D/traffic.pcap" > /dev/null
echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) N=$N dir=$D"
for i in $(seq "$N"); do
  for k in "${!BINS[@]}"; do
    /usr/bin/time -f "%U %S %e %M" -o "$T/t" "${BINS[$k]}" scan --output json --no-progress \
      --blocklist "$D/blocklist.txt" --threads 1 "$D/traffic.pcap" > "$T/out.$k" 2>/dev/null
    tail -1 "$T/t" | awk '{printf "%.2f %s %s\n", $1+$2, $3, $4}' >> "$T/r.$k"
    [ "$k" -gt 0 ] && { cmp -s "$T/out.0" "$T/out.$k" || echo "round $i: ${BINS[$k]} OUTPUT DIFFERS"; }
  done
  /usr/bin/time -f "%U %S %e %M" -o "$T/t" "$T/pc" "$D/traffic.pcap" > /dev/null 2>&1
  tail -1 "$T/t" | awk '{printf "%.2f %s %s\n", $1+$2, $3, $4}' >> "$T/r.pcap"
done
med() { sort -g -k"$2" "$1" | awk -v k="$2" '{v[NR]=$k} END {print v[int((NR+1)/2)]}'; }
pc=$(med "$T/r.pcap" 1)
for k in "${!BINS[@]}" pcap; do
  if [ "$k" = pcap ]; then name=libpcap-loop; else name=${BINS[$k]}; fi
  c=$(med "$T/r.$k" 1)
  echo "$name cpu_s=$c wall_s=$(med "$T/r.$k" 2) rss_kb=$(med "$T/r.$k" 3) x_libpcap=$(echo "scale=3; $pc / $c" | bc) cpu_runs=[$(cut -d' ' -f1 "$T/r.$k" | tr '\n' ' ')]"
done
echo "# end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$T"
