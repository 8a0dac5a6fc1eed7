#!/usr/bin/env bash
# Runs every test of Nightjar. Installs what the tests need when it is missing
# (Debian packages need root; without root those tests skip with a message).
#   scripts/test.sh            all tests (unit, golden, tshark agreement, fuzz smoke)
#   FUZZ_SECONDS=0 scripts/test.sh   skip the fuzz smoke run
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

install_debs() {
  local missing=()
  for pair in "$@"; do
    local cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) -ne 0 ]]; then
    log "not root: cannot install ${missing[*]}; tests that need them will skip"
    return 0
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_debs tshark:tshark

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -q -- -D warnings

log "cargo test"
cargo test --workspace --locked

if [[ ${FUZZ_SECONDS:-20} != 0 ]]; then
  log "fuzz smoke run (${FUZZ_SECONDS:-20} s per target)"
  scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
fi
