#!/usr/bin/env bash
# Runs every test of Nightjar. Installs what the tests need when it is missing
# (Debian packages need root; without root those tests skip with a message).
#   scripts/test.sh            all tests (unit, golden, tshark agreement, fuzz smoke)
#   FUZZ_SECONDS=0 scripts/test.sh   skip the fuzz smoke run
set -euo pipefail
cd "$(dirname "$0")/.."

# Each `log` line starts a stage; the time of every stage is printed at the end (also
# when a stage fails), so a slow CI run shows where the time went.
stage_names=() stage_secs=() stage_name="setup" stage_t0=$SECONDS
end_stage() {
  stage_names+=("$stage_name")
  stage_secs+=($((SECONDS - stage_t0)))
}
log() {
  end_stage
  stage_name=$*
  stage_t0=$SECONDS
  printf '\n==> %s\n' "$*"
}
print_stages() {
  local rc=$?
  end_stage
  printf '\n==> time per stage (%s)\n' "$([[ $rc == 0 ]] && echo passed || echo "failed, exit $rc")"
  local i
  for i in "${!stage_names[@]}"; do
    printf '%6d s  %s\n' "${stage_secs[$i]}" "${stage_names[$i]}"
  done
  printf '%6d s  total\n' "$SECONDS"
}
trap print_stages EXIT

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

install_debs tshark:tshark tcpreplay:tcpreplay ethtool:ethtool python3:python3 prometheus:prometheus promtool:prometheus chromium:chromium

# nightjar-flood links OpenSSL and libpcap; rdkafka builds librdkafka (make, a C compiler).
for dev in libssl-dev libpcap-dev pkg-config python3-venv make; do
  dpkg -s "$dev" >/dev/null 2>&1 && continue
  if [[ $(id -u) -eq 0 ]]; then
    log "installing $dev"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$dev" >/dev/null
  fi
done

# A Kafka-protocol broker for the Kafka export test: Tansu from crates.io (memory storage).
# Built once (about 12 minutes on 2 cores), then found in ~/.cargo/bin.
if ! command -v tansu >/dev/null 2>&1 && [[ ! -x ${CARGO_HOME:-$HOME/.cargo}/bin/tansu ]]; then
  log "installing tansu (Kafka-compatible broker) with cargo install"
  cargo install --locked --quiet tansu@0.6.0 --features dynostore
fi

# Reference and check tools in virtual environments (gitignored): FoxIO's ja4plus for the
# JA4 agreement of generated traffic, ONNX Runtime to re-check the committed model.
# NIGHTJAR_TOOLS_VENV puts it elsewhere (CI keeps it outside the clone, with the build).
tools_venv=${NIGHTJAR_TOOLS_VENV:-$PWD/.venv-tools}
if [[ ! -x $tools_venv/bin/ja4plus || ! -x $tools_venv/bin/python ]] || ! $tools_venv/bin/python -c "import onnxruntime, pytest, tqdm" 2>/dev/null; then
  log "installing ja4plus and onnxruntime into $tools_venv"
  python3 -m venv "$tools_venv"
  "$tools_venv/bin/pip" install -q ja4plus==1.4.0 -r model/requirements-check.txt
fi
export NIGHTJAR_JA4PLUS=$tools_venv/bin/ja4plus

log "model artifacts: hashes and ONNX Runtime parity fixture"
(cd model && "$tools_venv/bin/python" -m nightjar_model check)
log "model/ unit tests (labelling rules of the real corpus)"
(cd model && "$tools_venv/bin/python" -m pytest -q -p no:cacheprovider tests)

# The XDP program's toolchain: bpf-linker against Debian's LLVM 22, and rust-src for
# `-Z build-std=core` (see shared RECIPES.md). Only as root: the privileged tests need
# root anyway.
ebpf_ready=0
if [[ $(id -u) -eq 0 ]]; then
  if ! command -v bpf-linker >/dev/null 2>&1; then
    dpkg -s llvm-22-dev libpolly-22-dev >/dev/null 2>&1 || {
      log "installing llvm-22-dev libpolly-22-dev"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq llvm-22-dev libpolly-22-dev >/dev/null
    }
    log "building bpf-linker (once)"
    LLVM_PREFIX=/usr/lib/llvm-22 LLVM_SYS_221_PREFIX=/usr/lib/llvm-22 \
      cargo install --locked bpf-linker --no-default-features --features llvm-22
  fi
  rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src
  # xsk-rs builds libxdp/libbpf in C.
  install_debs clang:clang llc:llvm m4:m4 bpftool:bpftool pkg-config:pkg-config
  for dev in libelf-dev zlib1g-dev libpcap-dev; do
    dpkg -s "$dev" >/dev/null 2>&1 || {
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$dev" >/dev/null
    }
  done
  ebpf_ready=1
fi

if command -v promtool >/dev/null 2>&1; then
  log "promtool: alert rules, their unit tests, the scrape configuration"
  promtool check rules deploy/prometheus/alerts.yml
  promtool test rules deploy/prometheus/alerts_test.yml
  promtool check config deploy/prometheus/prometheus.yml
  promtool check config deploy/prometheus/prometheus-compose.yml
elif [[ -n ${NIGHTJAR_REQUIRE_TOOLS:-} ]]; then
  echo "promtool is required but not installed" >&2
  exit 1
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --all-targets --locked -q -- -D warnings
cargo clippy --all-targets --locked -q -p nightjar-flood -- -D warnings

log "cargo test"
cargo test --locked
log "nightjar-flood: unit tests, and (root) the smoke scenario through namespaces, replay, tshark and ja4plus"
if [[ $(id -u) -eq 0 ]]; then export NIGHTJAR_REQUIRE_FLOOD=1; fi
cargo test --locked -p nightjar-flood

# The README's quick start, exactly as the README writes it (so the two cannot drift):
# the first indented `cargo run` line after "Run Nightjar on its embedded sample captures".
log "README quick start, verbatim"
quick=$(awk '/^Run Nightjar on its embedded sample captures/ {f = 1} f && /^    cargo run / {sub(/^    /, ""); print; exit}' README.md)
if [[ -z $quick ]]; then
  echo "README.md: no quick-start command found" >&2
  exit 1
fi
echo "\$ $quick"
demo_out=$(bash -c "$quick" 2>/dev/null)
printf '%s\n' "$demo_out"
if ! grep -Eq '^[0-9]+ flows: benign [0-9]+, attack [0-9]+, malware [0-9]+, unknown [0-9]+\. Model ' <<<"$demo_out" \
  || ! grep -q '^app  *client -> server' <<<"$demo_out"; then
  echo "the README's quick start did not print the demo's table and counts" >&2
  exit 1
fi

if ((ebpf_ready)); then
  log "cargo clippy --features ebpf"
  cargo clippy --all-targets --locked -q -p nightjar -p nightjar-benches --features ebpf -- -D warnings
  log "privileged tests: XDP program and AF_XDP capture in network namespaces"
  NIGHTJAR_REQUIRE_XDP=1 cargo test --locked -p nightjar --features ebpf --test live_xdp
fi

if [[ ${FUZZ_SECONDS:-20} != 0 ]]; then
  log "fuzz smoke run (${FUZZ_SECONDS:-20} s per target)"
  scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
fi
