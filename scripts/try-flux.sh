#!/usr/bin/env bash
# Flux for real (docs/gitops.md, "What was tried"): builds Flux's source-controller and kustomize-controller from
# the Go module proxy (scripts/build-flux.sh, cached), then runs tests/harness/flux.py: the project's control plane,
# a registry, the wharf operator, a Git server holding deploy/, and the two controllers syncing
# deploy/gitops/flux/*.yaml. Prints each step's outcome; exits non-zero if one did not hold.
# Not part of scripts/test.sh: a cold build of the two controllers takes many minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WHARF_BIN_DIR="$(bash tests/cluster/build-binaries.sh | tail -n 1)"
export FLUX_BIN_DIR="$(bash scripts/build-flux.sh | tail -n 1)"
cd tests && exec ../.venv/bin/python -m harness.flux --dir ../.run-flux "$@"
