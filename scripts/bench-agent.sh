#!/usr/bin/env bash
# Benchmark of oras-agent against a local docker-registry, with the ORAS Python SDK
# measured in the same run: push and pull of a directory of 10,000 files of 4 KiB and of
# a single 1 GiB file, plus a raw streaming PUT/GET of the same 1 GiB blob with curl.
# Reports wall time and peak RSS of each command. Not part of the test suite.
#
#   scripts/bench-agent.sh            (FILES=10000 BIG_MIB=1024 by default)
#   FILES=1000 BIG_MIB=128 scripts/bench-agent.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
FILES=${FILES:-10000}
BIG_MIB=${BIG_MIB:-1024}
REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}

[ -x "$REGISTRY_BIN" ] || { echo "$REGISTRY_BIN is missing: apt-get install docker-registry" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is missing: apt-get install curl" >&2; exit 1; }

echo "building oras-agent (release)..." >&2
cargo build --quiet --release -p oras-agent --manifest-path "$ROOT/Cargo.toml"
AGENT=$CARGO_TARGET_DIR/release/oras-agent

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
measure() {
  local label=$1; shift
  if ! /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/out.log" 2>"$WORK/err.log"; then
    echo "FAILED: $label" >&2; cat "$WORK/err.log" >&2; exit 1
  fi
  read -r wall rss < "$WORK/time"
  printf '%-44s %10.2f %14.1f\n' "$label" "$wall" "$(echo "$rss / 1024" | bc -l)"
}

cd "$WORK/src"
measure "agent push $FILES x 4 KiB (directory)" "$AGENT" push --plain-http "$HOST/bench/many:agent" many
measure "agent pull $FILES x 4 KiB (directory)" "$AGENT" pull --plain-http "$HOST/bench/many:agent" -o "$WORK/pull-agent-many"
measure "oras-py push $FILES x 4 KiB (directory)" "$PY" "$WORK/py_push.py" "$HOST" "$HOST/bench/many:py" many
measure "oras-py pull $FILES x 4 KiB (directory)" "$PY" "$WORK/py_pull.py" "$HOST" "$HOST/bench/many:py" "$WORK/pull-py-many"
diff -r many "$WORK/pull-agent-many/many" >/dev/null || { echo "agent pull differs" >&2; exit 1; }

# Raw streaming PUT and GET of the same blob, in a repository of its own.
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
measure "raw PUT $BIG_MIB MiB (curl)" bash -c raw_put
measure "raw GET $BIG_MIB MiB (curl, to a file)" curl -fsS -o "$WORK/raw.bin" "http://$HOST/v2/bench/raw/blobs/$BIG_DIGEST"
rm -f "$WORK/raw.bin"
measure "agent push $BIG_MIB MiB file" "$AGENT" push --plain-http "$HOST/bench/big:agent" big.bin
measure "agent pull $BIG_MIB MiB file" "$AGENT" pull --plain-http "$HOST/bench/big:agent" -o "$WORK/pull-agent-big"
cmp big.bin "$WORK/pull-agent-big/big.bin" || { echo "agent pull differs" >&2; exit 1; }
rm -rf "$WORK/pull-agent-big"
measure "oras-py push $BIG_MIB MiB file" "$PY" "$WORK/py_push.py" "$HOST" "$HOST/bench/big:py" big.bin
measure "oras-py pull $BIG_MIB MiB file" "$PY" "$WORK/py_pull.py" "$HOST" "$HOST/bench/big:py" "$WORK/pull-py-big"
