#!/usr/bin/env bash
# Benchmark of oras-agent against a local docker-registry, with its references measured
# in the same run: the previous agent (built from REFERENCE, main by default, by
# scripts/build-reference.sh; REFERENCE=none skips it), the oras Go CLI (from `make
# tools`), the ORAS Python SDK, and a raw streaming PUT/GET of the same 1 GiB blob with
# curl. Push and pull of a directory of 10,000 files of 4 KiB and of a single 1 GiB
# file, then the hand-off from the application's exit to the sidecar's first byte to
# the registry (scripts/bench-handoff.py, HANDOFF_RUNS runs per agent), and the cost of
# the image format (`push --image`) against the ORAS one. Reports wall
# time and peak RSS of each command, then the ratios. Not part of the test suite.
#
#   scripts/bench-agent.sh            (FILES=10000 BIG_MIB=1024 HANDOFF_RUNS=21)
#   FILES=1000 BIG_MIB=128 scripts/bench-agent.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
FILES=${FILES:-10000}
BIG_MIB=${BIG_MIB:-1024}
HANDOFF_RUNS=${HANDOFF_RUNS:-21}
REFERENCE=${REFERENCE:-main}
ORAS=${ORAS:-${ORAS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oras-operator-rs/tools}/bin/oras}
REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}

[ -x "$REGISTRY_BIN" ] || { echo "$REGISTRY_BIN is missing: apt-get install docker-registry" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is missing: apt-get install curl" >&2; exit 1; }

PREVIOUS=
if [ "$REFERENCE" != none ]; then
  PREVIOUS=$("$ROOT/scripts/build-reference.sh" "$REFERENCE")/oras-agent
fi
echo "building oras-agent (release)..." >&2
cargo build --quiet --release -p oras-agent --manifest-path "$ROOT/Cargo.toml"
AGENT=$CARGO_TARGET_DIR/release/oras-agent
[ -x "$ORAS" ] || { echo "no oras Go CLI at $ORAS (make tools): it is left out" >&2; ORAS=; }

VENV=$CARGO_TARGET_DIR/oras-py-venv
if ! "$VENV/bin/python" -c 'import oras.client' 2>/dev/null; then
  echo "creating $VENV with the ORAS Python SDK..." >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet oras || { echo "pip install oras failed (is PyPI reachable?)" >&2; exit 1; }
fi
PY=$VENV/bin/python

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-agent.XXXXXX")
REGISTRY_PID=
cleanup() {
  if [ -n "$REGISTRY_PID" ]; then kill "$REGISTRY_PID" 2>/dev/null || true; wait "$REGISTRY_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOST=127.0.0.1:$PORT
cat > "$WORK/registry.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/storage
  delete:
    enabled: true
http:
  addr: $HOST
YAML
"$REGISTRY_BIN" serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 100); do
  curl -fs "http://$HOST/v2/" >/dev/null && break
  sleep 0.1
done
curl -fs "http://$HOST/v2/" >/dev/null || { cat "$WORK/registry.log" >&2; exit 1; }

echo "making $FILES files of 4 KiB and one file of $BIG_MIB MiB..." >&2
mkdir -p "$WORK/src"
python3 - "$WORK/src/many" "$FILES" <<'PY'
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    d = os.path.join(root, f"d{i // 1000:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(2048) + bytes(2048))
PY
head -c "$((BIG_MIB * 1024 * 1024))" /dev/urandom > "$WORK/src/big.bin"
BIG_DIGEST=sha256:$(sha256sum "$WORK/src/big.bin" | cut -d' ' -f1)
sync

cat > "$WORK/py_push.py" <<'PY'
import sys, oras.client
c = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)
c.push(target=sys.argv[2], files=sys.argv[3:]).raise_for_status()
PY
cat > "$WORK/py_pull.py" <<'PY'
import sys, oras.client
c = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)
c.pull(target=sys.argv[2], outdir=sys.argv[3])
PY

printf '%-44s %10s %14s\n' "what" "wall (s)" "peak RSS (MiB)"
declare -A WALL RSS
# measure KEY LABEL COMMAND...: runs it, prints and keeps its wall time and peak RSS.
measure() {
  local key=$1 label=$2; shift 2
  if ! /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/out.log" 2>"$WORK/err.log"; then
    echo "FAILED: $label" >&2; cat "$WORK/err.log" >&2; exit 1
  fi
  read -r wall rss < "$WORK/time"
  WALL[$key]=$wall
  RSS[$key]=$(echo "$rss / 1024" | bc -l)
  printf '%-44s %10.2f %14.1f\n' "$label" "$wall" "${RSS[$key]}"
}
# ratio A B: A's wall time over B's, when both were measured.
ratio() {
  if [ -n "${WALL[$1]:-}" ] && [ -n "${WALL[$2]:-}" ]; then
    printf '%-44s %10.2f\n' "$1 / $2" "$(echo "${WALL[$1]} / ${WALL[$2]}" | bc -l)"
  fi
}
oras_go() { "$ORAS" "$@" --plain-http; }
export -f oras_go
export ORAS

cd "$WORK/src"
measure agent-dir-push "agent push $FILES x 4 KiB (directory)" "$AGENT" push --plain-http "$HOST/bench/many-agent:v1" many
measure agent-dir-push-image "agent push --image $FILES x 4 KiB (directory)" "$AGENT" push --image --plain-http "$HOST/bench/many-agent-image:v1" many
measure agent-dir-pull "agent pull $FILES x 4 KiB (directory)" "$AGENT" pull --plain-http "$HOST/bench/many-agent:v1" -o "$WORK/pull-agent-many"
diff -r many "$WORK/pull-agent-many/many" >/dev/null || { echo "agent pull differs" >&2; exit 1; }
rm -rf "$WORK/pull-agent-many"
if [ -n "$PREVIOUS" ]; then
  measure previous-dir-push "previous agent push $FILES x 4 KiB" "$PREVIOUS" push --plain-http "$HOST/bench/many-previous:v1" many
  measure previous-dir-pull "previous agent pull $FILES x 4 KiB" "$PREVIOUS" pull --plain-http "$HOST/bench/many-previous:v1" -o "$WORK/pull-previous-many"
  rm -rf "$WORK/pull-previous-many"
fi
if [ -n "$ORAS" ]; then
  measure oras-dir-push "oras (Go) push $FILES x 4 KiB" bash -c 'oras_go push "$0/bench/many-oras:v1" many' "$HOST"
  measure oras-dir-pull "oras (Go) pull $FILES x 4 KiB" bash -c 'oras_go pull "$0/bench/many-oras:v1" -o "$1"' "$HOST" "$WORK/pull-oras-many"
  rm -rf "$WORK/pull-oras-many"
fi
measure py-dir-push "oras-py push $FILES x 4 KiB (directory)" "$PY" "$WORK/py_push.py" "$HOST" "$HOST/bench/many-py:v1" many
measure py-dir-pull "oras-py pull $FILES x 4 KiB (directory)" "$PY" "$WORK/py_pull.py" "$HOST" "$HOST/bench/many-py:v1" "$WORK/pull-py-many"
rm -rf "$WORK/pull-py-many"

# Raw streaming PUT and GET of the same blob, in a repository of its own (each tool
# pushes to its own repository, so none finds the blob already there).
raw_put() {
  local location
  location=$(curl -fsS -X POST -D - -o /dev/null "http://$HOST/v2/bench/raw/blobs/uploads/" \
    | tr -d '\r' | awk 'tolower($1)=="location:" {print $2}')
  case $location in http*) ;; *) location="http://$HOST$location" ;; esac
  case $location in *\?*) location="$location&digest=$BIG_DIGEST" ;; *) location="$location?digest=$BIG_DIGEST" ;; esac
  curl -fsS -X PUT -H 'Content-Type: application/octet-stream' -T big.bin "$location" -o /dev/null
}
export -f raw_put
export HOST BIG_DIGEST
measure raw-put "raw PUT $BIG_MIB MiB (curl)" bash -c raw_put
measure raw-get "raw GET $BIG_MIB MiB (curl, to a file)" curl -fsS -o "$WORK/raw.bin" "http://$HOST/v2/bench/raw/blobs/$BIG_DIGEST"
rm -f "$WORK/raw.bin"
measure agent-big-push "agent push $BIG_MIB MiB file" "$AGENT" push --plain-http "$HOST/bench/big-agent:v1" big.bin
measure agent-big-push-image "agent push --image $BIG_MIB MiB file" "$AGENT" push --image --plain-http "$HOST/bench/big-agent-image:v1" big.bin
measure agent-big-pull-image "agent pull $BIG_MIB MiB file (--image)" "$AGENT" pull --plain-http "$HOST/bench/big-agent-image:v1" -o "$WORK/pull-agent-big-image"
cmp big.bin "$WORK/pull-agent-big-image/big.bin" || { echo "agent pull of the image differs" >&2; exit 1; }
rm -rf "$WORK/pull-agent-big-image"
measure agent-big-pull "agent pull $BIG_MIB MiB file" "$AGENT" pull --plain-http "$HOST/bench/big-agent:v1" -o "$WORK/pull-agent-big"
cmp big.bin "$WORK/pull-agent-big/big.bin" || { echo "agent pull differs" >&2; exit 1; }
rm -rf "$WORK/pull-agent-big"
if [ -n "$PREVIOUS" ]; then
  measure previous-big-push "previous agent push $BIG_MIB MiB file" "$PREVIOUS" push --plain-http "$HOST/bench/big-previous:v1" big.bin
  measure previous-big-pull "previous agent pull $BIG_MIB MiB file" "$PREVIOUS" pull --plain-http "$HOST/bench/big-previous:v1" -o "$WORK/pull-previous-big"
  rm -rf "$WORK/pull-previous-big"
fi
if [ -n "$ORAS" ]; then
  measure oras-big-push "oras (Go) push $BIG_MIB MiB file" bash -c 'oras_go push "$0/bench/big-oras:v1" big.bin' "$HOST"
  measure oras-big-pull "oras (Go) pull $BIG_MIB MiB file" bash -c 'oras_go pull "$0/bench/big-oras:v1" -o "$1"' "$HOST" "$WORK/pull-oras-big"
  rm -rf "$WORK/pull-oras-big"
fi
measure py-big-push "oras-py push $BIG_MIB MiB file" "$PY" "$WORK/py_push.py" "$HOST" "$HOST/bench/big-py:v1" big.bin
measure py-big-pull "oras-py pull $BIG_MIB MiB file" "$PY" "$WORK/py_pull.py" "$HOST" "$HOST/bench/big-py:v1" "$WORK/pull-py-big"
rm -rf "$WORK/pull-py-big"

echo
echo "ratios of wall time (below 1: the agent is faster)"
for what in dir-push dir-pull big-push big-pull; do
  for reference in previous oras py; do ratio "agent-$what" "$reference-$what"; done
done
ratio agent-big-push raw-put
echo "the image format (--image) against the ORAS format, same agent"
ratio agent-dir-push-image agent-dir-push
ratio agent-big-push-image agent-big-push
ratio agent-big-pull-image agent-big-pull
ratio agent-big-pull raw-get
peak=0
for key in "${!RSS[@]}"; do
  case $key in agent-*) peak=$(echo "if (${RSS[$key]} > $peak) ${RSS[$key]} else $peak" | bc -l) ;; esac
done
printf 'agent peak RSS over every command: %.1f MiB (budget 32 MiB)\n' "$peak"

echo
handoff=("agent=$AGENT")
[ -n "$PREVIOUS" ] && handoff+=("previous=$PREVIOUS")
python3 "$ROOT/scripts/bench-handoff.py" "$HOST" "$HANDOFF_RUNS" "${handoff[@]}"
