#!/usr/bin/env bash
# The whole suite, as CI runs it: set-up, static checks, unit and real-cluster tests, then the README's run
# command end to end (--check).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WHARF_BIN_DIR="$(bash tests/cluster/build-binaries.sh | tail -n 1)"

echo "== static checks"
.venv/bin/ruff check operator tests
.venv/bin/ruff format --check operator tests
.venv/bin/mypy
.venv/bin/lint-imports

echo "== tests"
if [ "$#" -gt 0 ]; then
  # A narrowed run (`scripts/test.sh tests/unit -q`): those tests only, without the end-to-end run.
  .venv/bin/pytest -p no:cacheprovider "$@"
  exit
fi
.venv/bin/pytest tests -p no:cacheprovider --durations=25  # the slowest tests, to keep the whole command short

echo "== the README's run command"
bash scripts/run-local.sh --check
