#!/usr/bin/env bash
# Installs the Python side of the project from Debian's packages: pip cannot reach its registry on our
# machines, and Debian's builds are what CI has.
#   install-deps.sh          everything (training, reference checks, benchmark baseline)
#   install-deps.sh test     only what `npm test` runs (the Keras reference forward pass: numpy + h5py)
set -euo pipefail
if [ "${1:-all}" = test ]; then
  pkgs=(python3-numpy python3-h5py)
  check='import numpy, h5py'
else
  pkgs=(python3-torch python3-torchvision python3-onnx python3-numpy python3-pil python3-h5py python3-sklearn python3-flask)
  check='import torch, torchvision, onnx, numpy, PIL, h5py, sklearn, flask'
fi
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
/usr/bin/python3 -c "$check" && echo "python deps ok: ${pkgs[*]}"
