#!/usr/bin/env bash
# Issue #16's log goal, same run: `poolwatch scan` of the BIND, Unbound and dnsmasq logs
# against `grep -F -f LIST LOG` (its matches written to a file: with stdout on /dev/null GNU
# grep stops at the first match), and against a baseline binary. CPU seconds = user + sys from
# /usr/bin/time; the three commands are interleaved (grep, baseline, binary; N rounds) and the
# median of N is printed with lines per CPU-second and the ratios.
#
#   python3 ../shared/bench/gen/dnsgen.py --preset large --packets 1000000 --blocklist 10000 \
#     --out /tmp/1m
#   cargo build --release
#   flock /tmp/bench.lock nice -n -5 benches/logs_job.sh /tmp/1m [N=5] [BIN] [BASE]
#
# BIN defaults to target/release/poolwatch; BASE (e.g. main's release binary) is optional.
# Env: EXTRA_ARGS is appended to every poolwatch command.
set -euo pipefail
D=${1:?usage: logs_job.sh WORKLOAD_DIR [N] [BIN] [BASE]}
N=${2:-5}
BIN=${3:-target/release/poolwatch}
BASE=${4:-}
EXTRA_ARGS=${EXTRA_ARGS:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# once NAME CMD… : one timed run, its CPU seconds appended to $TMP/NAME.cpu
once() {
  local name=$1; shift
  /usr/bin/time -f "%U %S" -o "$TMP/t" "$@" > "$TMP/out.$name" 2> "$TMP/err" || true
  if grep -q "Command terminated by signal\|No such file\|not found" "$TMP/t" "$TMP/err"; then
    echo "$name failed: $(head -c 300 "$TMP/err")" >&2; exit 1
  fi
  read -r u s < <(tail -n 1 "$TMP/t")
  echo "$u + $s" | bc >> "$TMP/$name.cpu"
}

echo "# $D, N=$N, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# bin: $BIN ($("$BIN" --version 2>/dev/null || true))${BASE:+; base: $BASE ($("$BASE" --version 2>/dev/null || true))}"
printf '| %-9s | %9s | %-24s |%s %-34s |\n' log lines "grep -F -f (CPU s)" "${BASE:+ baseline (CPU s, × grep) |}" "binary (CPU s, lines/CPU-s, × grep)"
for log in bind-query unbound dnsmasq; do
  f="$D/$log.log"
  [ -f "$f" ] || continue
  lines=$(wc -l < "$f")
  cat "$f" "$D/blocklist.txt" > /dev/null   # warm the page cache
  # shellcheck disable=SC2206
  pw=(scan --output json --no-progress --blocklist "$D/blocklist.txt" $EXTRA_ARGS "$f")
  for _ in $(seq "$N"); do
    once "grep_$log" grep -F -f "$D/blocklist.txt" "$f"
    [ -n "$BASE" ] && once "base_$log" "$BASE" "${pw[@]}"
    once "bin_$log" "$BIN" "${pw[@]}"
  done
  if [ -n "$BASE" ] && ! cmp -s "$TMP/out.base_$log" "$TMP/out.bin_$log"; then
    echo "$log: the binary's output differs from the baseline's" >&2
  fi
  g=$(median < "$TMP/grep_$log.cpu")
  b=$(median < "$TMP/bin_$log.cpu")
  ratio() { if [ "$(echo "$1 > 0" | bc)" = 1 ]; then echo "scale=2; $2 / $1" | bc; else echo "n/a"; fi; }
  rate="n/a"
  if [ "$(echo "$b > 0" | bc)" = 1 ]; then rate=$(echo "$lines / $b" | bc); fi
  basecol=""
  if [ -n "$BASE" ]; then
    a=$(median < "$TMP/base_$log.cpu")
    basecol=$(printf ' %s, %s× |' "$a" "$(ratio "$a" "$g")")
  fi
  printf '| %-9s | %9s | %-24s |%s %-34s |\n' "$log" "$lines" "$g" "$basecol" \
    "$b, $rate, $(ratio "$b" "$g")×"
  echo "#   runs: grep [$(tr '\n' ' ' < "$TMP/grep_$log.cpu")]${BASE:+ base [$(tr '\n' ' ' < "$TMP/base_$log.cpu")]} bin [$(tr '\n' ' ' < "$TMP/bin_$log.cpu")]"
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
