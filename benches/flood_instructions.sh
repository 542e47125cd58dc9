#!/usr/bin/env bash
# Issue #11's flood against its clean capture in instructions (callgrind: deterministic, so one
# run each and no noise from a shared machine), for one or more binaries on the same pcaps:
# flood and clean instructions, their ratio (goal <= 3), and whether each binary's outputs are
# byte-identical to the first one's.
#
#   cargo build --release --bin poolwatch --example flood_pcap
#   benches/flood_instructions.sh [CLIENTS=8192] [ROUNDS=3] BIN [BIN…]
#
# Needs valgrind. Each callgrind run takes ~20 s per 8 192 clients; the binaries run one after
# the other. The CPU-seconds companion is benches/flood_job.sh.
set -euo pipefail
CLIENTS=${1:-8192}
ROUNDS=${2:-3}
shift 2 || true
[ $# -ge 1 ] || set -- target/release/poolwatch
GEN=${GEN:-target/release/examples/flood_pcap}
command -v valgrind > /dev/null || { echo "flood_instructions.sh: needs valgrind" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$GEN" "$TMP" "$CLIENTS" "$ROUNDS" > /dev/null

# ir BIN PCAP OUT : the run's instruction count (callgrind's "I refs"), output in OUT
ir() {
  valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" "$1" scan --output json \
    --no-progress "$2" > "$3" 2> "$TMP/cg.err" || true
  sed -n 's/.*I *refs: *//p' "$TMP/cg.err" | tr -d ,
}

echo "# flood vs clean in instructions: $CLIENTS clients x $ROUNDS rounds, $(date -u +%FT%TZ)"
i=0
for bin in "$@"; do
  f=$(ir "$bin" "$TMP/flood.pcap" "$TMP/flood.$i")
  c=$(ir "$bin" "$TMP/clean.pcap" "$TMP/clean.$i")
  same=""
  if [ "$i" -gt 0 ]; then
    if cmp -s "$TMP/flood.0" "$TMP/flood.$i" && cmp -s "$TMP/clean.0" "$TMP/clean.$i"; then
      same=" | outputs byte-identical to the first binary's"
    else
      same=" | outputs DIFFER from the first binary's"
    fi
  fi
  printf '%s: flood %s M, clean %s M, flood/clean = %s (goal <= 3), detections=%s%s\n' "$bin" \
    "$(echo "scale=1; $f / 1000000" | bc)" "$(echo "scale=1; $c / 1000000" | bc)" \
    "$(echo "scale=3; $f / $c" | bc)" "$(wc -l < "$TMP/flood.$i")" "$same"
  i=$((i + 1))
done
