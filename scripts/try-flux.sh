#!/usr/bin/env bash
# Flux for real (docs/gitops.md, "The Flux trial"): builds Flux's source-controller and kustomize-controller (from
# the Go module proxy) and helm-controller (from a git snapshot of github.com/fluxcd/helm-controller: the proxy
# does not serve it) with scripts/build-flux.sh, cached; the operator image is built by scripts/build-image.sh
# (cached) inside the trial. Then runs tests/harness/flux.py: the project's control plane, a registry, a Git server
# holding deploy/, the three controllers installing the chart with the HelmRelease of deploy/gitops/flux/wharf.yaml
# and syncing deploy/gitops/flux/apps.yaml, the operator pod's container run from the image by runc. Prints each
# step's outcome; exits non-zero if one did not hold.
# Not part of scripts/test.sh: a cold build of the three controllers and the image takes many minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WHARF_BIN_DIR="$(bash tests/cluster/build-binaries.sh | tail -n 1)"
export FLUX_BIN_DIR="$(bash scripts/build-flux.sh | tail -n 1)"
cd tests && exec ../.venv/bin/python -m harness.flux --dir ../.run-flux "$@"
