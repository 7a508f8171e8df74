#!/usr/bin/env bash
# `npm run train`: retrains the shipped model from scratch (Python deps, data export, training, export).
# Extra arguments go to train.py, e.g. `npm run train -- --steps 300` for a quick run.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash model/training/install-deps.sh
npx tsx model/training/export-dataset.ts
# Large tensors otherwise go through mmap/munmap on every step (measured: ~40 % of the time in the kernel).
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296 OMP_NUM_THREADS=1
exec /usr/bin/python3 model/training/train.py "$@"
