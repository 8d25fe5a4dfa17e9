#!/usr/bin/env bash
# Builds the operator image from operator/Dockerfile without a Docker engine, pushes it, prints its digest.
#
#   scripts/build-image.sh [--push docker://HOST/REPO:TAG] [--dest-tls-verify=false] [--refresh-base]
#
# 1. The base: Debian's own python3 (bookworm) made by mmdebstrap from Debian packages, no container engine and
#    no registry needed. Reproducible: a fixed SOURCE_DATE_EPOCH, and the same packages give the same tarball
#    (packages.txt beside it lists their versions). Cached under $WHARF_CACHE/image-base (default
#    ~/.cache/wharf), keyed by its recipe; --refresh-base builds it again (to pick up Debian security updates).
# 2. The image: `buildah bud` (vfs storage, --isolation chroot: no daemon, no overlay mounts, no user namespaces)
#    of operator/Dockerfile unchanged, with PYTHON_IMAGE set to that base, VERSION (pyproject.toml) and
#    REVISION (the last git commit that changed the image's sources) as build args for the OCI labels, and that
#    commit's time as the created timestamp.
#    Written as an OCI layout under $WHARF_CACHE/images/<key>, keyed by every input; a layout already there is
#    not built again (the three newest are kept). buildah's own storage lives only as long as the run.
# 3. `skopeo copy` of that layout to --push's destination. The last line printed is the image's digest.
#
# Needs the Debian packages in deploy/apt-packages.txt (mmdebstrap, buildah, skopeo); scripts/setup.sh installs
# them. Debian packages and PyPI must be reachable for a cold build.
set -euo pipefail
cd "$(dirname "$0")/.."

push=""
tls_verify=true
refresh_base=false
for arg in "$@"; do
  case "$arg" in
    --push=*) push=${arg#--push=} ;;
    --dest-tls-verify=false) tls_verify=false ;;
    --refresh-base) refresh_base=true ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) if [ "${prev:-}" = "--push" ]; then push=$arg; elif [ "$arg" != "--push" ]; then
         echo "unknown argument: $arg (see --help)" >&2; exit 2; fi ;;
  esac
  prev=$arg
done

for tool in mmdebstrap buildah skopeo; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: bash scripts/setup.sh installs deploy/apt-packages.txt" >&2; exit 1; }
done

cache=${WHARF_CACHE:-$HOME/.cache/wharf}
log() { echo "build-image: $*" >&2; }
# One build at a time per cache: a second one (another checkout, a trial next to the tests) waits, then finds the
# base and the image it would have made already there, instead of both renaming the same .tmp into place.
mkdir -p "$cache"
exec 9>"$cache/build-image.lock"
flock 9

# -- 1. the base ---------------------------------------------------------------------------------------------
SUITE=bookworm
MIRROR=${WHARF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${WHARF_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# Essential packages (a shell, coreutils, login's /usr/sbin/nologin) plus Python with venv/ensurepip (the
# Dockerfile's build stage makes a virtualenv) and the CA certificates registries' TLS is checked against.
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
BASE_EPOCH=1735689600  # 2025-01-01T00:00:00Z: file times and the config's created time, fixed
base_recipe="suite=$SUITE variant=essential packages=$BASE_PACKAGES epoch=$BASE_EPOCH recipe=2"
base_key=$(printf '%s' "$base_recipe" | sha256sum | cut -c1-16)
base_dir="$cache/image-base/$base_key"
base_tar="$base_dir/rootfs.tar"
if $refresh_base || [ ! -s "$base_tar" ]; then
  log "making the base with mmdebstrap ($base_recipe)"
  mkdir -p "$base_dir"
  SOURCE_DATE_EPOCH=$BASE_EPOCH mmdebstrap --quiet --format=tar --variant=essential --include="$BASE_PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='chroot "$1" dpkg-query -W -f="\${Package} \${Version}\n" > "$1/tmp/packages.txt"' \
    --customize-hook="copy-out /tmp/packages.txt $base_dir" \
    --customize-hook='rm -f "$1/tmp/packages.txt"' \
    "$SUITE" "$base_tar.tmp" \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY_MIRROR $SUITE-security main"
  mv "$base_tar.tmp" "$base_tar"
fi

# buildah's storage is this run's own, deleted at the end: vfs copies every layer in full, so a kept store grows
# by gigabytes a build, and concurrent builds never share one. What is worth keeping is cached elsewhere: the
# base tarball above and the finished image below.
work=$(mktemp -d "${TMPDIR:-/tmp}/wharf-build-image.XXXXXX")
storage=(--root "$work/root" --runroot "$work/run" --storage-driver vfs)
cleanup() { rm -rf --one-file-system "$work"; }  # vfs mounts nothing; never follow a leftover bind mount
trap cleanup EXIT
export BUILDAH_ISOLATION=chroot
base_image="localhost/wharf-base:$base_key"

# -- 2. the image --------------------------------------------------------------------------------------------
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
# The source revision: the last commit that changed what goes into the image (a commit touching only tests or
# docs builds the same image, with the same labels and digest); "-dirty" when those files have local changes.
image_sources=(operator/Dockerfile operator/wharf pyproject.toml README.md requirements/operator.lock)
revision=$(git log -1 --format=%H -- "${image_sources[@]}" 2>/dev/null || true)
created=$(git log -1 --format=%ct -- "${image_sources[@]}" 2>/dev/null || true)
revision=${revision:-unknown}
created=${created:-$BASE_EPOCH}
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain -- "${image_sources[@]}" 2>/dev/null)" ]; then
  revision="$revision-dirty"
fi
inputs=$( { echo "$base_image $(sha256sum "$base_tar" | cut -c1-16) $version $revision $created"; cat operator/Dockerfile pyproject.toml README.md requirements/operator.lock;
            find operator/wharf -type f ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16)
layout="$cache/images/$inputs"
tag="localhost/wharf:$version"
if [ ! -f "$layout/index.json" ]; then
  start=$(date +%s)
  log "importing the base ($base_tar) as $base_image"
  ctr=$(buildah "${storage[@]}" from --quiet scratch)
  buildah "${storage[@]}" add --quiet "$ctr" "$base_tar" / >/dev/null
  buildah "${storage[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 --os linux --arch "$(dpkg --print-architecture)" "$ctr"
  buildah "${storage[@]}" commit --quiet --timestamp "$BASE_EPOCH" --rm "$ctr" "$base_image" >/dev/null
  log "building operator/Dockerfile with buildah (version $version, revision $revision)"
  # pip in the build reaches PyPI as this machine does: through the host's CA bundle (a TLS-inspecting proxy's
  # CA is in it on CI machines) and its index, if one is set. Mounted for the RUN steps only: not in the image.
  pip_conf="$work/pip.conf"
  { echo "[global]"; echo "cert = /etc/ssl/certs/ca-certificates.crt"
    [ -n "${PIP_INDEX_URL:-}" ] && echo "index-url = $PIP_INDEX_URL"; } > "$pip_conf"
  chmod 644 "$pip_conf"
  ca_bundle=${WHARF_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
  mounts=(-v "$pip_conf:/etc/pip.conf:ro")
  [ -f "$ca_bundle" ] && mounts+=(-v "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro")
  buildah "${storage[@]}" bud --quiet --isolation chroot --timestamp "$created" "${mounts[@]}" \
    --build-arg PYTHON_IMAGE="$base_image" --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    -f operator/Dockerfile -t "$tag" . >/dev/null
  rm -rf "$layout.tmp"
  mkdir -p "$(dirname "$layout")"
  buildah "${storage[@]}" push --quiet "$tag" "oci:$layout.tmp:$version" >&2
  rm -rf "$layout" && mv "$layout.tmp" "$layout"
  # Keep the three newest images: enough for switching branches, bounded on disk (about 80 MB each).
  ls -1td "$cache"/images/*/ | tail -n +4 | xargs -r rm -rf
  log "built in $(( $(date +%s) - start )) s"
fi

# -- 3. push -------------------------------------------------------------------------------------------------
digestfile="$work/digest"
if [ -n "$push" ]; then
  log "pushing to $push"
  skopeo copy --quiet --dest-tls-verify="$tls_verify" --digestfile "$digestfile" "oci:$layout:$version" "$push" >&2
  cat "$digestfile"; echo
else
  # Not pushed: the digest of the manifest in the layout (what a push keeps: skopeo copies it unchanged).
  skopeo inspect --raw "oci:$layout:$version" | sha256sum | sed 's/^\([0-9a-f]*\).*/sha256:\1/'
fi
