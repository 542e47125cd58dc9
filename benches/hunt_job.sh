#!/usr/bin/env bash
# The retro-hunt history benchmark of issue #18 (docs/hunt.md "Benchmark"): 30 simulated days
# for 10k clients through the engine, without and with the history recorder in the same run;
# history bytes per day (counted and sled's size on disk), hunt and retro-hunt latency.
#
#   cargo build --release --example hunt_bench
#   flock /tmp/bench.lock nice -n -5 benches/hunt_job.sh [DIR=/tmp/hunt_bench] [ARGS…]
#
# ARGS go to the example (--days N --clients N --lookups N --names N --miners N --hunts N
# --max-bytes N). Prints the load average before and after, and `du` of the database.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$HERE/target}/release/examples/hunt_bench}
DIR=${1:-/tmp/hunt_bench}
shift || true
echo "load before: $(uptime)"
"$BIN" --dir "$DIR" "$@"
echo "du: $(du -sh "$DIR" | cut -f1)"
echo "load after: $(uptime)"
rm -rf "$DIR"
