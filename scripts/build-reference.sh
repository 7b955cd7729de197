#!/usr/bin/env bash
# Builds the previous version (a git revision, main by default) of the agent (release)
# and of the policy (policy.wasm) into $CARGO_TARGET_DIR/reference/<rev>/, so that the
# benchmarks measure it in the same run as the current tree. The revision's tree is
# exported with `git archive` into a temporary directory: no checkout or worktree is
# touched, and the dependencies come from the same target directory.
#
#   scripts/build-reference.sh [REV]    (prints the directory holding both)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
REV=${1:-main}
COMMIT=$(git -C "$ROOT" rev-parse --short "$REV")
OUT=$CARGO_TARGET_DIR/reference/$COMMIT
if [ -x "$OUT/oras-agent" ] && [ -f "$OUT/policy.wasm" ]; then
  echo "$OUT"
  exit 0
fi
SRC=$(mktemp -d "${TMPDIR:-/tmp}/reference-$COMMIT.XXXXXX")
trap 'rm -rf "$SRC"' EXIT
git -C "$ROOT" archive "$COMMIT" | tar -x -C "$SRC"
echo "building $REV ($COMMIT): oras-agent (release) and policy.wasm..." >&2
cargo build --quiet --release -p oras-agent --manifest-path "$SRC/Cargo.toml" >&2
mkdir -p "$OUT"
cp "$CARGO_TARGET_DIR/release/oras-agent" "$OUT/oras-agent"
cargo build --quiet -p oras-policy --target wasm32-wasip1 --profile policy --manifest-path "$SRC/Cargo.toml" >&2
cp "$CARGO_TARGET_DIR/wasm32-wasip1/policy/oras_policy.wasm" "$OUT/policy.wasm"
echo "$OUT"
