#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ (all, or those named) for SECONDS each,
# one after another: `npm run fuzz -- [SECONDS] [TARGET...]`, default 60 s.
# Each target checks a property of sack::checks (src/checks.rs). Needs
# rustup's nightly toolchain and cargo-fuzz; both are installed if missing.
# Each run starts from the committed seeds in fuzz/seeds/<target>/ (made by
# scripts/fuzz-seeds.js) and the corpus earlier runs grew in
# fuzz/corpus/<target>/. libFuzzer writes new inputs to its first corpus
# directory, so corpus/ comes first and the seeds stay as committed. The
# corpus and a failing input, kept in fuzz/artifacts/<target>/, are not
# committed. Not part of `npm test`: `cargo test` runs the same checks on
# seeded inputs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
[ $# -gt 0 ] && shift
rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
mkdir -p logs
for t in "${targets[@]}"; do
  dict=()
  case $t in http_* | response_head) dict=(-dict=http.dict) ;; esac
  mkdir -p "corpus/$t"
  if cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$secs" "${dict[@]}" \
      -print_final_stats=1 >"logs/$t.log" 2>&1; then
    runs=$(grep -o 'number_of_executed_units: [0-9]*' "logs/$t.log" | grep -o '[0-9]*$')
    echo "$t: ok, $runs inputs in $secs s"
  else
    tail -n 40 "logs/$t.log"
    echo "$t: FAILED (fuzz/logs/$t.log, input in fuzz/artifacts/$t/)"
    exit 1
  fi
done
