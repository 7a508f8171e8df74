#!/usr/bin/env bash
# Makes the local base image IMAGE (default localhost/kidney-node-base:trixie) unless podman already has it:
# Debian trixie with its Node.js 20 (mmdebstrap, from Debian's packages: the only registry our machines reach
# besides npm's), imported into podman. The root file system tarball is kept in CACHE_DIR, so a new podman
# storage re-imports it in seconds instead of bootstrapping again (about 2 minutes).
set -euo pipefail
image=${1:-localhost/kidney-node-base:trixie}
cache=${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kidney-stone-service}
if podman image exists "$image"; then exit 0; fi
tarball="$cache/node-base-trixie.tar"
if [ ! -s "$tarball" ]; then
  mkdir -p "$cache"
  # documentation, manual pages and translations are of no use in the image
  mmdebstrap --variant=apt --format=tar --include=nodejs \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    trixie "$tarball.partial"
  mv "$tarball.partial" "$tarball"
fi
podman import --quiet "$tarball" "$image" >/dev/null
