#!/usr/bin/env bash
# Builds every real binary the tests and the local run need, from Go modules on this machine, and caches them
# outside the repo keyed by version. A binary already in the cache is not rebuilt.
# Prints the bin directory on its last line.
set -euo pipefail

K8S_VERSION=v1.36.3   # kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy (gobuild/go.mod)
ETCD_VERSION=v3.6.8   # the etcd server the k8s.io/kubernetes module graph already pins (gobuild/go.mod)
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0
# The Gateway API's standard-channel CRDs (GatewayClass, Gateway, HTTPRoute), which routing tests install
# (harness.gateway_api): from the Go module, as the project's Go modules come, into $bin/gateway-api.
GATEWAY_API_VERSION=v1.6.3

here=$(cd "$(dirname "$0")" && pwd)
cache=${WHARF_CACHE:-$HOME/.cache/wharf}
bin="$cache/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION"
mkdir -p "$bin"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
k8s_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor \
 -X k8s.io/client-go/pkg/version.gitTreeState=clean"

build_local() {  # name: a main under gobuild/cmd
  local name=$1
  [ -x "$bin/$name" ] && return 0
  echo "building $name" >&2
  (cd "$here/gobuild" && go build -trimpath -ldflags "$k8s_ldflags" -o "$bin/$name.tmp" "./cmd/$name")
  mv "$bin/$name.tmp" "$bin/$name"
}

build_module() {  # name: a main in its own small module under tests/cluster/NAME
  local name=$1
  [ -x "$bin/$name" ] && return 0
  echo "building $name" >&2
  (cd "$here/$name" && go build -trimpath -ldflags "-s -w" -o "$bin/$name.tmp" .)
  mv "$bin/$name.tmp" "$bin/$name"
}

install_module() {  # name, module path@version: a main whose module needs no replace lines
  local name=$1 pkg=$2
  [ -x "$bin/$name" ] && return 0
  echo "building $name from $pkg" >&2
  local tmp; tmp=$(mktemp -d)
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "$pkg"
  mv "$tmp/$name" "$bin/$name"
  rmdir "$tmp"
}

build_local etcd
build_local kube-apiserver
build_local kube-controller-manager
build_local kube-scheduler
build_local kubectl
# the real node (tests/harness/node.py): a few minutes more on a cold cache, ~25 s with the modules warm
build_local kubelet
build_local kube-proxy
install_module kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
install_module helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
# Argo CD's Lua interpreter running deploy/argocd/health.lua as Argo CD does (tests/unit/test_argocd_health.py)
build_module argocd-health

gateway_api_crds() {  # the standard channel's CRDs of the kinds wharf writes or refers to
  local dir="$bin/gateway-api"
  [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$GATEWAY_API_VERSION" ] && return 0
  echo "fetching the Gateway API $GATEWAY_API_VERSION CRDs" >&2
  local tmp src; tmp=$(mktemp -d)
  # Outside any module: the download is of the module itself, not of a dependency of this folder's go.mod.
  src=$(cd "$tmp" && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" \
    | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$src" ] || { echo "go mod download sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION failed" >&2; exit 1; }
  for kind in gatewayclasses gateways httproutes; do
    cp "$src/config/crd/standard/gateway.networking.k8s.io_$kind.yaml" "$tmp/"
  done
  echo "$GATEWAY_API_VERSION" > "$tmp/VERSION"
  chmod -R u+w,go+rX "$tmp"
  rm -rf "$dir"
  mv "$tmp" "$dir"
}
gateway_api_crds

echo "$bin"
