#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from the Go module proxy (for scripts/try-flux.sh; not
# part of the test command) and caches them outside the repo keyed by version, like tests/cluster/build-binaries.sh.
# The modules carry `replace .../api => ./api`, so `go install m@v` refuses them: the module and its api submodule
# are downloaded at the same version, put together in a scratch folder and built there.
# helm-controller is not built: the Go module proxy does not serve github.com/fluxcd/helm-controller.
# v1.9.6 is the newest release whose go.mod accepts Go 1.26 (v1.10.x says go 1.27.0). The Go module proxy does not
# serve github.com/fluxcd/pkg/artifact v0.18.3, which source-controller v1.9.6 requires: it is built with v0.18.0
# (same minor version, served), the only change to the modules as released.
# Prints the bin directory on its last line (the CRDs are in $bin/crds).
set -euo pipefail

FLUX_SOURCE_VERSION=${FLUX_SOURCE_VERSION:-v1.9.6}
FLUX_KUSTOMIZE_VERSION=${FLUX_KUSTOMIZE_VERSION:-v1.9.6}

cache=${WHARF_CACHE:-$HOME/.cache/wharf}
bin="$cache/bin/flux-source-$FLUX_SOURCE_VERSION-kustomize-$FLUX_KUSTOMIZE_VERSION"
mkdir -p "$bin/crds"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=mod ${GOFLAGS:-}"

module_dir() {  # module@version -> its folder in the module cache
  go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

work=""
trap '[ -z "$work" ] || rm -rf "$work"' EXIT

build_controller() {  # name, version, then `go mod edit` arguments (replacements of modules the proxy lacks)
  local name=$1 version=$2
  shift 2
  [ -x "$bin/$name" ] && return 0
  echo "building $name $version" >&2
  local src api
  src=$(module_dir "github.com/fluxcd/$name@$version")
  api=$(module_dir "github.com/fluxcd/$name/api@$version")
  work=$(mktemp -d)
  cp -r "$src/." "$work/"
  rm -rf "$work/api"
  cp -r "$api" "$work/api"
  chmod -R u+w "$work"
  [ $# -eq 0 ] || (cd "$work" && go mod edit "$@")
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin/$name.tmp" .)
  cp "$work"/config/crd/bases/*.yaml "$bin/crds/"
  rm -rf "$work"
  work=""
  mv "$bin/$name.tmp" "$bin/$name"
}

build_controller source-controller "$FLUX_SOURCE_VERSION" \
  -replace github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@v0.18.0
build_controller kustomize-controller "$FLUX_KUSTOMIZE_VERSION"
echo "$bin"
