#!/usr/bin/env bash
# Seeds each fuzz target's corpus (fuzz/corpus/<target>/, not committed) from the
# repository's fixtures: the admission requests and their settings, the annotations
# and references those requests carry, manifests and archives made the way `oras push`
# makes them, and the share's records. Idempotent: libFuzzer keeps what it adds.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=fuzz/corpus
mkdir -p "$corpus"/{policy_validate,policy_settings,annotations,references,manifest,archive,share_records}

# The policy: every example request (an AdmissionReview is a valid payload: the
# settings default) and every settings object the examples and the chart use.
cp examples/requests/*.json "$corpus/policy_validate/"
n=0
for settings in '{}' '{"defaultCache":"oras-cache","agentImage":"ghcr.io/x/oras-agent:0.1.0"}' \
  '{"clusterDomain":"cluster.local","allowedRegistries":["registry.example:5000"],"insecureRegistries":["registry.example:5000"],"agentResources":{"requests":{"cpu":"10m"},"limits":{"memory":"64Mi"}}}' \
  '{"unknown":1}' '{"agentImage":5}'; do
  n=$((n + 1))
  printf '%s' "$settings" > "$corpus/policy_settings/seed-$n.json"
done

# The annotations and references of the example requests, as name=value lines and
# as registry\nreference pairs.
python3 - "$corpus" examples/requests/*.json <<'PY'
import json, sys, pathlib
corpus = pathlib.Path(sys.argv[1])
prefix = "oras.converged-computing.github.io/"
def annotation_maps(value):
    if isinstance(value, dict):
        annotations = value.get("annotations")
        if isinstance(annotations, dict):
            yield annotations
        for child in value.values():
            yield from annotation_maps(child)
    elif isinstance(value, list):
        for child in value:
            yield from annotation_maps(child)
for path in sys.argv[2:]:
    request = json.load(open(path))
    for i, annotations in enumerate(annotation_maps(request)):
        lines = [f"{k[len(prefix):]}={v}" for k, v in annotations.items() if k.startswith(prefix)]
        if not lines:
            continue
        stem = f"{pathlib.Path(path).stem}-{i}"
        (corpus / "annotations" / stem).write_text("\n".join(lines))
        for j, line in enumerate(lines):
            name, value = line.split("=", 1)
            if name.startswith(("input-uri", "output-uri")):
                (corpus / "references" / f"{stem}-{j}").write_text(f"registry.example:5000\n{value}")
PY
printf 'localhost:5000\nhello/world:v1@sha256:%064d' 0 > "$corpus/references/digest"
printf 'cache=retention\nretention=7d\n' > "$corpus/annotations/retention"

# Manifests as `oras push` writes them: a file layer, a directory layer, a referrer.
empty='{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="}'
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.unknown.artifact.v1","config":%s,"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%064d","size":6,"annotations":{"org.opencontainers.image.title":"hello.txt"}}],"annotations":{"org.opencontainers.image.created":"2026-12-01T08:00:00Z"}}' "$empty" 1 \
  > "$corpus/manifest/file-layer.json"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%064d","size":99,"annotations":{"org.opencontainers.image.title":"results","io.deis.oras.content.digest":"sha256:%064d","io.deis.oras.content.unpack":"true"}}]}' "$empty" 2 3 \
  > "$corpus/manifest/directory-layer.json"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.in-toto+json","config":%s,"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%064d","size":400}}' "$empty" 4 \
  > "$corpus/manifest/referrer.json"

# Uncompressed tars (the target gzips them): a directory with a file, an inner
# symlink, a hard link, an empty directory, a long name; and the example workflow.
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/results/sub" "$tree/results/empty"
printf 'data\n' > "$tree/results/sub/file.txt"
ln -s sub/file.txt "$tree/results/link"
ln "$tree/results/sub/file.txt" "$tree/results/hard"
touch "$tree/results/$(printf 'n%.0s' $(seq 1 120))"
tar -C "$tree" --format=pax -cf "$corpus/archive/results-pax.tar" results
tar -C "$tree" --format=gnu -cf "$corpus/archive/results-gnu.tar" results
tar -C examples -cf "$corpus/archive/workflow.tar" workflow

# The share's records as the roles write them.
printf '0\n' > "$corpus/share_records/exit"
printf 'ok sha256:%064d\n' 5 > "$corpus/share_records/push-ok"
printf 'error cannot push registry.example:5000/out:v1: 503\n' > "$corpus/share_records/push-error"
printf '{"argv":["sh","-c","echo hi"],"started":"2026-12-01T10:00:00Z","finished":"2026-12-01T10:00:01Z"}' > "$corpus/share_records/run"
printf '{"output":"r/out:1","digest":"sha256:cc","pod":"ns/p","finished":null}' > "$corpus/share_records/memoized"
printf 'registry.example:5000/in:1@sha256:%064d\n' 6 > "$corpus/share_records/inputs"

for dir in "$corpus"/*/; do
  echo "$(basename "$dir"): $(find "$dir" -type f | wc -l) seeds"
done
