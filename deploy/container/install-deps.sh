#!/bin/sh
# Installs the service's dependencies from package-lock.json (and .npmrc) in the current folder into DIR:
#   DIR/all/node_modules   everything, dev dependencies included (the image's type check)
#   DIR/prod/node_modules  production only, what the image ships; onnxruntime-node's libraries for other
#                          platforms (about 245 MB of its 288) removed
# Run inside the image build (the Dockerfile's default) or on the build host (npm run container:test).
set -eu
dir=$1
for kind in all prod; do
  mkdir -p "$dir/$kind"
  cp package.json package-lock.json .npmrc "$dir/$kind/"
done
(cd "$dir/all" && npm ci --no-audit --no-fund)
(cd "$dir/prod" && npm ci --omit=dev --no-audit --no-fund)
ort="$dir/prod/node_modules/onnxruntime-node/bin"
keep=$(node -p 'process.platform + "/" + process.arch')
for platform_arch in "$ort"/napi-v*/*/*; do
  case "$platform_arch" in */"$keep") ;; *) rm -rf "$platform_arch" ;; esac
done
find "$ort" -type d -empty -delete
[ -n "$(ls "$ort"/napi-v*/"$keep"/*.node)" ]
