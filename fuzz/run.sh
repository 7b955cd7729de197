#!/usr/bin/env bash
# fuzz/run.sh SECONDS: runs every fuzz target (or those in $FUZZ_TARGETS) for SECONDS with its corpus
# (fuzz/corpus/<target>/) and prints the executions of each. Fails after the first
# target that crashes; libFuzzer saved the input under fuzz/artifacts/<target>/.
# $CARGO_FUZZ is the cargo-fuzz binary (make fuzz installs it).
set -euo pipefail
seconds=$1
cd "$(dirname "$0")"
cargo_fuzz=${CARGO_FUZZ:-cargo-fuzz}
# cargo-fuzz passes nightly -Z flags; the stable toolchain takes them for this build only.
export RUSTC_BOOTSTRAP=1
# No sanitizer: the code under test is safe Rust, so panics and the targets' own
# assertions are the oracle; debug assertions catch overflows.
flags=(--sanitizer none --debug-assertions)
"$cargo_fuzz" build "${flags[@]}"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
printf '%-16s %12s %9s\n' target executions 'exec/s'
for target in ${FUZZ_TARGETS:-$("$cargo_fuzz" list)}; do
  if ! "$cargo_fuzz" run "${flags[@]}" "$target" -- -max_total_time="$seconds" \
      -print_final_stats=1 >"$logs/$target" 2>&1; then
    grep -m1 -A4 -e panicked -e "ERROR: libFuzzer" "$logs/$target" >&2 || tail -n 40 "$logs/$target" >&2
    echo "fuzz target $target crashed: the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  stat() { sed -n "s/^stat::$1: *//p" "$logs/$target"; }
  printf '%-16s %12s %9s\n' "$target" "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)"
done
