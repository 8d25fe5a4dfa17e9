#!/usr/bin/env bash
# Installs everything wharf's run and tests need, on a fresh Debian machine: Debian packages (the real
# Registry V2 server, skopeo, lua, mmdebstrap and buildah for scripts/build-image.sh, umoci and runc to run the
# image), the locked Python dependencies and the package with its dev tools in .venv, and the control-plane
# binaries built from Go modules (cached under ~/.cache/wharf; a cold build takes many minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# The Go builds need neither the Debian packages nor the venv: on a cold machine they run while those install.
mkdir -p .run
bash tests/cluster/build-binaries.sh >.run/build-binaries.log 2>&1 &
build=$!

mapfile -t packages < <(cat tests/harness/apt-packages.txt deploy/apt-packages.txt | sed 's/#.*//' | awk 'NF' | sort -u)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -q
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -q "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# The locked versions, every file checked against its sha256 (requirements/dev.lock, made by scripts/lock.sh),
# then the package itself without resolving anything again.
.venv/bin/pip install -q --require-hashes -r requirements/dev.lock
.venv/bin/pip install -q --no-deps --no-build-isolation -e .

if ! wait "$build"; then
  tail -n 40 .run/build-binaries.log >&2
  echo "building the control-plane binaries failed: .run/build-binaries.log" >&2
  exit 1
fi
echo "setup done: binaries in $(bash tests/cluster/build-binaries.sh | tail -n 1)"
