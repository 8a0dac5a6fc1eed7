#!/usr/bin/env bash
# Throughput of `nightjar replay` against tshark (JA3 extraction) and ndpiReader on the
# same synthetic capture (real flows of the bundled fixtures cloned onto 198.18.0.0/15).
# Prints a markdown table; each figure is the median of RUNS runs (default 3).
#   benches/compare.sh [COPIES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
copies=${1:-4000}
runs=${2:-3}
pcap=${TMPDIR:-/tmp}/nightjar-compare.pcap
bin=${CARGO_TARGET_DIR:-target}/release
cargo build --release -q -p nightjar -p nightjar-benches
"$bin"/nightjar-synth --out "$pcap" --copies "$copies" --spacing-us 500
pkts=$("$bin"/nightjar replay --no-events --workers 1 "$pcap" 2>&1 | awk '/^  packets/{print $2}')
flows=$("$bin"/nightjar replay --no-events --workers 1 "$pcap" 2>&1 | awk '/^  flows/{print $2}')

median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
timeit() {
  for _ in $(seq "$runs"); do
    local s e
    s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N)
    echo "$e - $s" | bc -l
  done | median
}

t1=$(timeit "$bin"/nightjar replay --workers 1 --events /dev/null "$pcap")
t2=$(timeit "$bin"/nightjar replay --workers 2 --events /dev/null "$pcap")
ts=$(timeit tshark -r "$pcap" -T fields -e tls.handshake.ja3)
nd=$(timeit ndpiReader -i "$pcap" -q)
row() { printf '| %s | %.2f s | %.0f | %.0f | %.1fx |\n' "$1" "$2" "$(echo "$pkts / $2" | bc -l)" "$(echo "$flows / $2" | bc -l)" "$(echo "$ts / $2" | bc -l)"; }
echo "Capture: $copies copies, $pkts packets, $flows flows, $(du -h "$pcap" | cut -f1); $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| tool | wall time | packets/s | flows/s | speed vs tshark |"
echo "|---|---|---|---|---|"
row "nightjar replay, 1 worker (events on)" "$t1"
row "nightjar replay, 2 workers (events on)" "$t2"
row "ndpiReader -i (1 thread)" "$nd"
row "tshark -T fields -e tls.handshake.ja3" "$ts"
rm -f "$pcap"
