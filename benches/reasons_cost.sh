#!/usr/bin/env bash
# What verdict.reasons cost: alternating paired replays of the same captures with
# `model.reasons` on (the shipped default) and off, one worker, events off (the classifier
# and the explanations still run), median wall time of N pairs.
#   benches/reasons_cost.sh [PAIRS] [REPEAT] [CAPTURE_DIR...]
# Default: 5 pairs, the real nDPI and SpiderLabs captures of ../shared/data/real_traffic
# replayed 6 times over (a threat-heavy mix: about 45 % of the TLS/HTTP flows flagged).
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-5}
repeat=${2:-6}
shift $(( $# > 2 ? 2 : $# ))
dirs=("$@")
if ((${#dirs[@]} == 0)); then
  dirs=(../shared/data/real_traffic/ndpi_tests ../shared/data/real_traffic/spiderlabs_iocs)
fi
cargo build --release -q --bin nightjar
bin=target/release/nightjar
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mapfile -t one < <(find "${dirs[@]}" -type f \( -name '*.pcap' -o -name '*.pcapng' \) | sort)
files=()
for ((i = 0; i < repeat; i++)); do files+=("${one[@]}"); done
printf '[model]\nreasons = false\n' >"$tmp/off.toml"
run() { # $1 = on|off
  local cfg=()
  [[ $1 == off ]] && cfg=(--config "$tmp/off.toml")
  local t0 t1
  t0=$(date +%s.%N)
  "$bin" "${cfg[@]}" replay --workers 1 --quiet --no-events --summary-json "$tmp/$1.json" "${files[@]}" 2>/dev/null || true
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
on=() off=()
for ((i = 0; i < pairs; i++)); do
  on+=("$(run on)")
  off+=("$(run off)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
m_on=$(median "${on[@]}")
m_off=$(median "${off[@]}")
echo "files: ${#files[@]} (${#one[@]} x $repeat)"
echo "reasons on : ${on[*]} -> median $m_on s"
echo "reasons off: ${off[*]} -> median $m_off s"
echo "ratio on/off: $(echo "scale=3; $m_on / $m_off" | bc)"
python3 - "$tmp/on.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
d = s["detections"]
flagged = d["attack"] + d["malware"] + d["unknown"]
total = flagged + d["benign"]
r = s["reasons"]
print(f"classified {total}, flagged {flagged} ({100 * flagged / max(total, 1):.1f} %), "
      f"explained {r['explained']}, over budget {r['skipped_budget']}")
PY
