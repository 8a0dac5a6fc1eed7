#!/usr/bin/env bash
# Paired wall-time comparison of two nightjar binaries on one capture: the runs alternate
# (A, B, A, B, ...) so that a slower or busier moment of the machine hits both alike.
# Prints each run's wall time and the medians per worker count.
#   benches/paired.sh BIN_A BIN_B CAPTURE [RUNS] [WORKERS...]
# PAIRED_GLOBAL="--model none" puts options before `replay` (here: the classifier off).
# Example (the shipped configuration, classifier on, events written):
#   target/release/nightjar-synth --out /tmp/c.pcap --copies 4000 --spacing-us 500
#   benches/paired.sh /tmp/nightjar-before target/release/nightjar /tmp/c.pcap 5 1 2
set -euo pipefail
a=$1 b=$2 pcap=$3 runs=${4:-5}
shift 4 2>/dev/null || shift $#
workers=("$@")
read -r -a global <<<"${PAIRED_GLOBAL:-}"
((${#workers[@]})) || workers=(1 2)
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
secs() {
  local s e
  s=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}
for w in "${workers[@]}"; do
  ta=() tb=()
  for i in $(seq "$runs"); do
    ta+=("$(secs "$a" "${global[@]}" replay --quiet --workers "$w" --events /dev/null "$pcap")")
    tb+=("$(secs "$b" "${global[@]}" replay --quiet --workers "$w" --events /dev/null "$pcap")")
    printf 'workers %s run %s: A %.3f s, B %.3f s\n' "$w" "$i" "${ta[-1]}" "${tb[-1]}"
  done
  ma=$(printf '%s\n' "${ta[@]}" | median)
  mb=$(printf '%s\n' "${tb[@]}" | median)
  printf 'workers %s: median A %.3f s, B %.3f s, B/A %.3f\n' "$w" "$ma" "$mb" "$(echo "$mb / $ma" | bc -l)"
done
