#!/usr/bin/env bash
# Argo CD for real (docs/gitops.md, "The Argo CD trial"): builds Argo CD v3.6.1 and kustomize from the Go module
# proxy (scripts/build-argocd.sh, cached), then runs tests/harness/argocd.py: the project's control plane, a
# registry with the example App's image and the operator image (scripts/build-image.sh), the wharf operator, a Git
# server holding deploy/, Redis, argocd-repo-server and argocd-application-controller syncing the two Applications
# of deploy/gitops/argocd/. Prints each step's outcome; exits non-zero if one did not hold.
# Not part of scripts/test.sh: a cold build of Argo CD takes minutes, and Redis is installed only for this trial.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v redis-server >/dev/null; then
  # Argo CD's cache; only this trial needs it, so it is not in tests/harness/apt-packages.txt (nor in CI).
  sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if_needed apt-get update -q
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -q --no-install-recommends redis-server
fi
export WHARF_BIN_DIR="$(bash tests/cluster/build-binaries.sh | tail -n 1)"
export ARGOCD_BIN_DIR="$(bash scripts/build-argocd.sh | tail -n 1)"
cd tests && exec ../.venv/bin/python -m harness.argocd --dir ../.run-argocd "$@"
