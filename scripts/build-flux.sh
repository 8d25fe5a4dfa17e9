#!/usr/bin/env bash
# Builds Flux's source-controller, kustomize-controller and helm-controller (for scripts/try-flux.sh; not part of
# the test command) and caches them outside the repo keyed by version, like tests/cluster/build-binaries.sh.
#
# source-controller and kustomize-controller come from the Go module proxy. Their modules carry
# `replace .../api => ./api`, so `go install m@v` refuses them: the module and its api submodule are downloaded at
# the same version, put together in a scratch folder and built there. v1.9.6 is the newest release whose go.mod
# accepts Go 1.26 (v1.10.x says go 1.27.0). The Go module proxy does not serve github.com/fluxcd/pkg/artifact
# v0.18.3, which source-controller v1.9.6 requires: it is built with v0.18.0 (same minor version, served).
#
# helm-controller does not come from the Go module proxy: the proxy answers 403 Forbidden ("This module version is
# not available") for github.com/fluxcd/helm-controller, its version list and every version. It is built from a
# git snapshot of github.com/fluxcd/helm-controller on this machine ($FLUX_HELM_SNAPSHOT, a bare git directory),
# the release tag exported with `git archive` (its ./api folder included); its dependencies come from the Go
# module proxy. v1.6.2 belongs with source-controller v1.9.x (Flux 2.9: its go.mod requires
# github.com/fluxcd/source-controller/api v1.9.0) and is built exactly as released. v1.6.3, the last v1.6 patch,
# replaces helm.sh/helm/v4 with github.com/fluxcd/helm/v4 v4.2.4-flux.1, which the proxy does not serve (403).
#
# Prints the bin directory on its last line (the CRDs of all three are in $bin/crds).
set -euo pipefail

FLUX_SOURCE_VERSION=${FLUX_SOURCE_VERSION:-v1.9.6}
FLUX_KUSTOMIZE_VERSION=${FLUX_KUSTOMIZE_VERSION:-v1.9.6}
FLUX_HELM_VERSION=${FLUX_HELM_VERSION:-v1.6.2}
FLUX_HELM_SNAPSHOT=${FLUX_HELM_SNAPSHOT:-/work/.mirror/fluxcd+helm-controller/repo}

cache=${WHARF_CACHE:-$HOME/.cache/wharf}
bin="$cache/bin/flux-source-$FLUX_SOURCE_VERSION-kustomize-$FLUX_KUSTOMIZE_VERSION-helm-$FLUX_HELM_VERSION"
mkdir -p "$bin/crds"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=mod ${GOFLAGS:-}"

module_dir() {  # module@version -> its folder in the module cache
  go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

work=""
trap '[ -z "$work" ] || rm -rf "$work"' EXIT

from_module_proxy() {  # name, version: the module and its api submodule from the Go module proxy, into $work
  echo "building $1 $2 from the Go module proxy" >&2
  local src api
  src=$(module_dir "github.com/fluxcd/$1@$2")
  api=$(module_dir "github.com/fluxcd/$1/api@$2")
  cp -r "$src/." "$work/"
  rm -rf "$work/api"
  cp -r "$api" "$work/api"
  chmod -R u+w "$work"
}

from_snapshot() {  # name, version: the release tag of the git snapshot $FLUX_HELM_SNAPSHOT, into $work
  if ! git --git-dir="$FLUX_HELM_SNAPSHOT" rev-parse --verify --quiet "refs/tags/$2^{commit}" >/dev/null 2>&1; then
    echo "build-flux.sh: cannot build $1 $2: no git snapshot of github.com/fluxcd/$1 with the tag $2 at" \
      "FLUX_HELM_SNAPSHOT=$FLUX_HELM_SNAPSHOT (a bare git directory, or a clone's .git). The Go module proxy does not" \
      "serve github.com/fluxcd/$1 (403 Forbidden), so its source must come from such a snapshot: set" \
      "FLUX_HELM_SNAPSHOT to one (git clone --bare https://github.com/fluxcd/$1)." >&2
    exit 1
  fi
  echo "building $1 $2 from the git snapshot $FLUX_HELM_SNAPSHOT (tag $2, commit" \
    "$(git --git-dir="$FLUX_HELM_SNAPSHOT" rev-parse "refs/tags/$2^{commit}"); dependencies from the Go module proxy)" >&2
  git --git-dir="$FLUX_HELM_SNAPSHOT" archive "$2" | tar -x -C "$work"
}

build_controller() {  # name, version, source (from_module_proxy | from_snapshot), then `go mod edit` arguments
  local name=$1 version=$2 source=$3
  shift 3
  [ -x "$bin/$name" ] && return 0
  work=$(mktemp -d)
  "$source" "$name" "$version"
  [ $# -eq 0 ] || (cd "$work" && go mod edit "$@")
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin/$name.tmp" .)
  cp "$work"/config/crd/bases/*.yaml "$bin/crds/"
  rm -rf "$work"
  work=""
  mv "$bin/$name.tmp" "$bin/$name"
}

build_controller source-controller "$FLUX_SOURCE_VERSION" from_module_proxy \
  -replace github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@v0.18.0
build_controller kustomize-controller "$FLUX_KUSTOMIZE_VERSION" from_module_proxy
build_controller helm-controller "$FLUX_HELM_VERSION" from_snapshot
echo "$bin"
