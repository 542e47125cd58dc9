#!/usr/bin/env bash
# The whole job, `poolwatch scan`, against its peers on the same generated workload, in the
# same run: CPU seconds (user+sys) and peak RSS from /usr/bin/time, median of N runs.
#
#   python3 ../shared/bench/gen/dnsgen.py --preset small --out /tmp/small
#   cargo build --release
#   benches/scan_job.sh /tmp/small [N=3] [BIN=target/release/poolwatch]
#
# Env: SKIP="tshark tcpdump …" skips rows by name or name prefix (tshark takes ~4 min per run on the large
# preset); EXTRA_ARGS is appended to every poolwatch command (e.g. "--binding-grace 0").
# poolwatch runs twice on the pcap: `--threads $(nproc)` and `--threads 1` (the default); the last line is
# their wall-clock ratio (issue #16's goal: >= 1.8 on 2 cores); a third run, `--threads 1
# --no-fast-path`, decodes every DNS message (the reference of the fast path, issue #16). The
# last lines give poolwatch's rate per CPU-second as a fraction of the libpcap loop's.
# Peers: tcpdump -nn port 53 (decodes and prints DNS), tshark -Y dns -T fields, the libpcap
# pcap_next_ex loop (../shared/bench/baselines/pcap_count.c, the ceiling), grep -F -f on the
# logs (output goes to a file: with stdout on /dev/null GNU grep stops at the first match),
# wc -l (the log ceiling).
set -euo pipefail
D=${1:?usage: scan_job.sh WORKLOAD_DIR [N] [BIN]}
N=${2:-3}
BIN=${3:-target/release/poolwatch}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-$HERE/../shared/bench}
SKIP=${SKIP:-}
EXTRA_ARGS=${EXTRA_ARGS:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

PC=$TMP/pcap_count
cc -O2 -o "$PC" "$BENCH/baselines/pcap_count.c" -lpcap

packets=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['packets'])" "$D/manifest.json")
cat "$D"/traffic.pcap "$D"/*.log > /dev/null 2>&1 || true   # warm the page cache

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# run NAME UNITS CMD… : prints "NAME median_cpu_s median_wall_s median_rss_kb units_per_cpu_s"
# (and remembers the median wall time in WALL_<NAME> for the ratios at the end)
run() {
  local name=$1 units=$2; shift 2
  local w
  for w in $SKIP; do
    case "$name" in "$w"*) return;; esac   # a row is skipped by its name or a prefix of it
  done
  local cpus=() rss=() walls=()
  for _ in $(seq "$N"); do
    /usr/bin/time -f "%U %S %M %e" -o "$TMP/t" "$@" > "$TMP/out" 2> "$TMP/err" || true
    if grep -q "Command terminated by signal\|No such file\|not found" "$TMP/t" "$TMP/err"; then
      echo "$name failed: $(head -c 300 "$TMP/err")" >&2; return 1
    fi
    read -r u s m e < <(tail -n 1 "$TMP/t")
    cpus+=("$(echo "$u + $s" | bc)"); rss+=("$m"); walls+=("$e")
  done
  local c r var=${name//[^A-Za-z0-9_]/_}   # bind-query: a shell variable name has no '-'
  c=$(printf '%s\n' "${cpus[@]}" | median)
  r=$(printf '%s\n' "${rss[@]}" | median)
  w=$(printf '%s\n' "${walls[@]}" | median)
  printf -v "WALL_$var" '%s' "$w"
  printf -v "CPU_$var" '%s' "$c"
  local rate="n/a (below the 10 ms timer resolution)"
  if [ "$(echo "$c > 0" | bc)" = 1 ]; then rate="$(echo "$units / $c" | bc)/cpu-s"; fi
  printf '%-28s cpu_s=%-8s wall_s=%-7s rss_kb=%-8s rate=%s runs=[%s]\n' "$name" "$c" "$w" "$r" "$rate" "${cpus[*]}"
}

# shellcheck disable=SC2206
PW=("$BIN" scan --output json --no-progress --blocklist "$D/blocklist.txt" $EXTRA_ARGS)

echo "# $D: $packets packets, N=$N, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
# All cores and one thread (`--threads 1`, the default; issue #16).
run poolwatch_pcap   "$packets" "${PW[@]}" --threads "$(nproc)" "$D/traffic.pcap"
run poolwatch_pcap_1thread "$packets" "${PW[@]}" --threads 1 "$D/traffic.pcap"
# The same without the packet fast path (every DNS message decoded: the reference).
run poolwatch_pcap_no_fast_path "$packets" "${PW[@]}" --threads 1 --no-fast-path "$D/traffic.pcap"
run libpcap_loop     "$packets" "$PC" "$D/traffic.pcap"
run tcpdump_port53   "$packets" tcpdump -r "$D/traffic.pcap" -nn port 53
run tshark_dns_fields "$packets" tshark -r "$D/traffic.pcap" -Y dns -T fields -e ip.src -e dns.qry.name -e dns.a
for log in bind-query unbound dnsmasq; do
  [ -f "$D/$log.log" ] || continue   # generated with --no-logs
  lines=$(wc -l < "$D/$log.log")
  run "poolwatch_$log" "$lines" "${PW[@]}" "$D/$log.log"
  run "grepF_$log"     "$lines" grep -F -f "$D/blocklist.txt" "$D/$log.log"
  run "wc_$log"        "$lines" wc -l "$D/$log.log"
done

if [ -n "${WALL_poolwatch_pcap:-}" ] && [ -n "${WALL_poolwatch_pcap_1thread:-}" ] \
  && [ "$(echo "$WALL_poolwatch_pcap > 0" | bc)" = 1 ]; then
  echo "wall-clock ratio --threads 1 / all cores ($(nproc) cores): $(echo "scale=2; $WALL_poolwatch_pcap_1thread / $WALL_poolwatch_pcap" | bc)"
fi
for name in poolwatch_pcap_1thread poolwatch_pcap_no_fast_path poolwatch_pcap; do
  cpu_var="CPU_$name"
  if [ -n "${!cpu_var:-}" ] && [ -n "${CPU_libpcap_loop:-}" ] && [ "$(echo "${!cpu_var} > 0" | bc)" = 1 ]; then
    echo "$name per CPU-second: $(echo "scale=3; $CPU_libpcap_loop / ${!cpu_var}" | bc) x the libpcap loop"
  fi
done
