#!/usr/bin/env bash
# make tools: builds the pinned upstream tools that the real-part tests run (the oras Go
# CLI, helm, crane, two registries, etcd, CoreDNS, Kubernetes' own binaries, and actionlint
# for the GitHub workflows) from their Go
# modules into a cache outside the repository, one folder per tool and version, and links
# the current ones into its bin/. A tool whose folder exists is not built again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${ORAS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oras-operator-rs/tools}
bin="$cache/bin"
mkdir -p "$bin"
command -v go >/dev/null 2>&1 || { echo "make tools needs Go (1.26 or later) on PATH" >&2; exit 1; }

export CGO_ENABLED=0 GOFLAGS=-trimpath

kubernetes_version=v1.29.15
etcd_version=$(sed -n 's#^require go.etcd.io/etcd/server/v3 \(v.*\)#\1#p' "$root/tools/etcd/go.mod")
ggcr_version=$(sed -n 's#^require github.com/google/go-containerregistry \(v.*\)#\1#p' "$root/tools/referrers-registry/go.mod")

# link NAME DIR: makes bin/NAME point at DIR/NAME.
link() { ln -sfn "../$(basename "$2")/$1" "$bin/$1"; }

# build NAME-VERSION BINARIES... -- COMMAND: runs COMMAND with $out set to a fresh folder,
# which becomes the tool's folder only once COMMAND succeeded.
build() {
  local folder=$1; shift
  local binaries=()
  while [ "$1" != "--" ]; do binaries+=("$1"); shift; done
  shift
  local dest="$cache/$folder"
  if [ ! -d "$dest" ]; then
    local started=$SECONDS
    out=$(mktemp -d "$cache/.building-$folder.XXXXXX")
    if ! "$@"; then rm -rf "$out"; echo "make tools: building $folder failed" >&2; exit 1; fi
    mv "$out" "$dest"
    echo "built $folder in $((SECONDS - started)) s"
  fi
  for b in "${binaries[@]}"; do link "$b" "$dest"; done
}

go_install() { GOBIN="$out" go install "$@"; }

kubernetes() {
  local v=$kubernetes_version minor
  minor=$(echo "$v" | cut -d. -f2)
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$v"
  (cd "$root/tools/kubernetes" && go build -ldflags "$ldflags" -o "$out/" \
    $(for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do echo k8s.io/kubernetes/cmd/$c; done))
}

etcd() { (cd "$root/tools/etcd" && go build -ldflags "-s -w" -o "$out/etcd" .); }
referrers_registry() { (cd "$root/tools/referrers-registry" && go build -ldflags "-s -w" -o "$out/referrers-registry" .); }

build oras-v1.3.6 oras -- go_install oras.land/oras/cmd/oras@v1.3.6
build helm-v3.22.0 helm -- go_install helm.sh/helm/v3/cmd/helm@v3.22.0
build crane-v0.22.1 crane -- go_install github.com/google/go-containerregistry/cmd/crane@v0.22.1
build registry-v3.1.2 registry -- go_install github.com/distribution/distribution/v3/cmd/registry@v3.1.2
build coredns-v1.15.0 coredns -- go_install github.com/coredns/coredns@v1.15.0
# From the Go proxy: actionlint's PyPI wrapper downloads its binary from GitHub.
build actionlint-v1.7.12 actionlint -- go_install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
build "etcd-$etcd_version" etcd -- etcd
build "referrers-registry-$ggcr_version" referrers-registry -- referrers_registry
build "kubernetes-$kubernetes_version" kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl -- kubernetes
echo "tools in $bin"
