#!/usr/bin/env bash
# Builds the service image with its OCI labels filled from this repository: version (package.json), model
# version (the shipped model's sidecar), revision and source (git), creation time. Other arguments go to the
# engine's `build` (docker by default, CONTAINER_ENGINE=podman for podman):
#   deploy/container/build.sh -t kidney-stone-service:1.0.0
set -euo pipefail
cd "$(dirname "$0")/../.."
engine=${CONTAINER_ENGINE:-docker}
version=$(node -p 'require("./package.json").version')
model_version=$(node -p 'require("./model/kidney-stone-cnn.json").version')
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# a remote's address without any user:password@ it may carry
source=$(git config --get remote.origin.url 2>/dev/null | sed -E 's#//[^/@]*@#//#' || true)
exec "$engine" build \
  --build-arg VERSION="$version" --build-arg MODEL_VERSION="$model_version" \
  --build-arg REVISION="$revision" --build-arg SOURCE="${source:-unknown}" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "$@" .
