#!/usr/bin/env bash
# Builds Argo CD from the Go module proxy (for scripts/try-argocd.sh; not part of the test command) and caches it
# outside the repo keyed by version, like tests/cluster/build-binaries.sh and scripts/build-flux.sh.
# One multi-call binary: invoked through a link named argocd-application-controller or argocd-repo-server it is that
# component; the script makes both links next to it.
# v3.6.1 needs Go 1.27 (GOTOOLCHAIN=go1.27.3; the toolchain comes from the Go module proxy). Its go.mod says
# `replace github.com/argoproj/argo-cd/gitops-engine/v3 => ./gitops-engine`, a nested module a module's download never
# contains (`replacement directory ./gitops-engine does not exist`): the replace is dropped, so gitops-engine/v3
# v3.6.1 comes from the proxy, which serves it. That is the only change to the module as released.
# The repo-server runs `kustomize build` for a folder with a kustomization.yaml (deploy/gitops/apps): kustomize
# v5.8.2 is built beside it (Argo CD v3.6.1 ships v5.8.3, whose go.mod asks for a k8s.io/kube-openapi pseudo-version
# the Go module proxy does not serve: `403 Forbidden`, "This module version is not available").
# Helm comes from tests/cluster/build-binaries.sh (v3; Argo CD v3.6.1's image ships Helm 4.3.1).
# About 5 minutes on an idle 2-core machine. Prints the bin directory on its last line (the CRDs are in $bin/crds,
# the install's ConfigMaps and Secret in $bin/config).
set -euo pipefail

ARGOCD_VERSION=${ARGOCD_VERSION:-v3.6.1}
ARGOCD_GO=${ARGOCD_GO:-go1.27.3}
KUSTOMIZE_VERSION=${KUSTOMIZE_VERSION:-v5.8.2}

cache=${WHARF_CACHE:-$HOME/.cache/wharf}
bin="$cache/bin/argocd-$ARGOCD_VERSION-kustomize-$KUSTOMIZE_VERSION-$ARGOCD_GO"
mkdir -p "$bin/crds" "$bin/config"
export CGO_ENABLED=0 GOTOOLCHAIN=$ARGOCD_GO GOFLAGS="-mod=mod ${GOFLAGS:-}"

work=""
trap '[ -z "$work" ] || rm -rf "$work"' EXIT

if [ ! -x "$bin/argocd" ] || [ ! -f "$bin/crds/application-crd.yaml" ] || [ ! -x "$bin/git-verify-wrapper.sh" ] \
  || [ ! -f "$bin/config/argocd-cm.yaml" ]; then
  src=$(cd /tmp && go mod download -json "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION" \
    | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$src" ] || { echo "go mod download gave no folder for argo-cd/v3@$ARGOCD_VERSION" >&2; exit 1; }
  if [ ! -x "$bin/argocd" ]; then
    echo "building argocd $ARGOCD_VERSION with $ARGOCD_GO" >&2
    work=$(mktemp -d)
    cp -r "$src/." "$work/"
    chmod -R u+w "$work"
    (cd "$work" && go mod edit -dropreplace github.com/argoproj/argo-cd/gitops-engine/v3)
    (cd "$work" && go build -o "$bin/argocd.tmp" ./cmd)
    rm -rf "$work"
    work=""
    mv "$bin/argocd.tmp" "$bin/argocd"
  fi
  install -m 0644 "$src"/manifests/crds/*-crd.yaml "$bin/crds/"
  # The ConfigMaps and Secret an install starts with (argocd-cm carries the default ignoreResourceUpdates).
  for config in argocd-cm argocd-cmd-params-cm argocd-rbac-cm argocd-secret; do
    install -m 0644 "$src/manifests/base/config/$config.yaml" "$bin/config/"
  done
  # The repo-server runs these (its image puts them in /usr/local/bin): git-verify-wrapper.sh for every manifest
  # generation from git (v3.6.1 calls it even with GnuPG verification disabled), gpg-wrapper.sh for GnuPG.
  install -m 0755 "$src/hack/git-verify-wrapper.sh" "$src/hack/gpg-wrapper.sh" "$bin/"
fi
if [ ! -x "$bin/kustomize" ]; then
  echo "building kustomize $KUSTOMIZE_VERSION" >&2
  work=$(mktemp -d)
  (cd /tmp && GOBIN="$work" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION")
  mv "$work/kustomize" "$bin/kustomize"
  rm -rf "$work"
  work=""
fi
for name in argocd-application-controller argocd-repo-server; do
  ln -sf argocd "$bin/$name"
done
echo "$bin"
