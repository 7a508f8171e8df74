#!/usr/bin/env bash
# Installs the Python side of the project (training, reference checks, benchmark baseline) from Debian's
# packages: pip cannot reach its registry on our machines, and Debian's builds are what CI has.
set -euo pipefail
pkgs=(python3-torch python3-torchvision python3-onnx python3-numpy python3-pil python3-h5py python3-sklearn python3-flask)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
/usr/bin/python3 -c 'import torch, torchvision, onnx, numpy, PIL, h5py, sklearn, flask; print("python deps ok, torch", torch.__version__)'
