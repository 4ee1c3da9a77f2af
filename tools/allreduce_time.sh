#!/usr/bin/env bash
# Measures the per-step gradient exchange of data-parallel training for each example's gradient
# size (docs/distributed.md): N processes (default 2) on this machine, median of 50 exchanges.
# Needs Open MPI (apt-get install libopenmpi-dev openmpi-bin). Usage: tools/allreduce_time.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
np="${1:-2}"
bin="$(mktemp -d)/allreduce_time"
mpicc -O2 -o "$bin" tools/allreduce_time.c
# lstm_sine, mnist_cnn, mnist_mlp, gru_sort, bench cnn, mlp_big, 10M (a small transformer)
mpirun --allow-run-as-root --oversubscribe -np "$np" "$bin" \
  4385 61706 101770 163856 225034 669706 10000000
