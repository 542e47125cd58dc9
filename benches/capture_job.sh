#!/usr/bin/env bash
# Whole-job decode benchmark for the capture stage, with peer baselines in the same run.
#
#   python3 ../shared/bench/gen/dnsgen.py --preset small --out /tmp/bench-small
#   benches/capture_job.sh /tmp/bench-small/traffic.pcap [runs]
#
# Reports the median CPU seconds (user+sys, /usr/bin/time) of:
#   poolwatch-decode  capture::open_file over the file, observations built, not printed
#   poolwatch-json    the same, every observation serialised as JSON (what `inspect` prints)
#   tcpdump           tcpdump -r FILE -nn port 53 > /dev/null
#   tshark (subset)   tshark -r SUBSET -Y dns -T fields -e dns.qry.name (first 20k packets)
#   pcap_count        a bare pcap_next_ex loop (the ceiling), when a C compiler is present
# and packets per CPU-second for each.
set -euo pipefail
F=${1:?usage: capture_job.sh traffic.pcap [runs]}
RUNS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build -q --release --example pcap_observations --manifest-path "$ROOT/Cargo.toml"
EX="$ROOT/target/release/examples/pcap_observations"
PKTS=$(capinfos -c -M "$F" 2>/dev/null | awk '/Number of packets/ {print $NF}')
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
SUB="$TMP/sub.pcap"
editcap -r "$F" "$SUB" 1-20000 2>/dev/null
SUBPKTS=20000

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cpu() { # label, packets, command...
  local label=$1 n=$2; shift 2
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%U %S" -o "$TMP/t" "$@" >/dev/null 2>"$TMP/err" || true
    awk '{print $1+$2}' "$TMP/t"
  done | median | awk -v l="$label" -v n="$n" '{ printf "%-18s %8.3f CPU-s  %12.0f pkts/CPU-s\n", l, $1, ($1 > 0 ? n/$1 : 0) }'
}

echo "file: $F ($PKTS packets), median of $RUNS runs"
cpu poolwatch-decode "$PKTS" "$EX" "$F" --quiet
cpu poolwatch-json "$PKTS" "$EX" "$F"
cpu tcpdump "$PKTS" tcpdump -r "$F" -nn port 53
cpu "tshark(20k)" "$SUBPKTS" tshark -r "$SUB" -Y dns -T fields -e dns.qry.name
if command -v cc >/dev/null && [ -f "$ROOT/../shared/bench/baselines/pcap_count.c" ]; then
  cc -O2 -o "$TMP/pcap_count" "$ROOT/../shared/bench/baselines/pcap_count.c" -lpcap 2>/dev/null &&
    cpu pcap_count "$PKTS" "$TMP/pcap_count" "$F"
fi
