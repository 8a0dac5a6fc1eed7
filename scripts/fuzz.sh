#!/usr/bin/env bash
# Runs every cargo-fuzz target for N seconds (default 20), from a corpus seeded with the
# bundled captures. Works on stable Rust: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z
# sanitizer flags. Installs cargo-fuzz when missing.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
targets=("$@")
((${#targets[@]})) || targets=(decode_frame tls_stream http_request reassembly pcap_file flow_table)
mkdir -p fuzz/corpus/pcap_file
cp -n sensor/tests/data/*.pcap* fuzz/corpus/pcap_file/ 2>/dev/null || true
# The kept corpora of the long runs (fuzz/README.md): the short run starts where they ended.
for t in "${targets[@]}"; do
  if [[ -d fuzz/seeds/$t ]]; then
    mkdir -p "fuzz/corpus/$t"
    cp -n "fuzz/seeds/$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
  fi
done
export RUSTC_BOOTSTRAP=1
# NIGHTJAR_FUZZ_TARGET_DIR keeps the sanitizer build elsewhere (CI: outside the clone);
# the default is cargo-fuzz's own fuzz/target.
target_dir=()
if [[ -n ${NIGHTJAR_FUZZ_TARGET_DIR:-} ]]; then
  target_dir=(--target-dir "$NIGHTJAR_FUZZ_TARGET_DIR")
fi
unset CARGO_TARGET_DIR
for t in "${targets[@]}"; do
  echo "fuzz $t for ${secs}s"
  cargo fuzz run --release "${target_dir[@]}" "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=0 2>&1 | tail -n 3
done
