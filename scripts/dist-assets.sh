#!/usr/bin/env bash
# Generates what the Debian package and other packagers install besides the binary: man pages
# and shell completions, from the release binary's own CLI definition (clap_mangen,
# clap_complete). Usage: cargo build --release && scripts/dist-assets.sh && cargo deb --no-build
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${POOLWATCH_BIN:-target/release/poolwatch}
out=target/dist
rm -rf "$out" && mkdir -p "$out/man" "$out/completions"
"$bin" manpage --dir "$out/man"
"$bin" completions bash -o "$out/completions/poolwatch.bash"
"$bin" completions zsh -o "$out/completions/_poolwatch"
"$bin" completions fish -o "$out/completions/poolwatch.fish"
echo "dist assets in $out" >&2
