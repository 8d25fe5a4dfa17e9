#!/usr/bin/env bash
# The embedded default: a local control plane, a registry with an example image, the operator, and the example
# App reaching Ready. Stays up until Ctrl-C (pass --check to stop once the App is Ready).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WHARF_BIN_DIR="$(bash tests/cluster/build-binaries.sh | tail -n 1)"
cd tests && exec ../.venv/bin/python -m harness.local --dir ../.run "$@"
