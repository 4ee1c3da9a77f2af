#!/usr/bin/env bash
# Training throughput of data parallelism on this machine: 2 MPI ranks of 1 thread each against
# 1 process of 2 threads, on bench/models/mlp_big.nnl and bench/models/cnn.nnl, the same global
# batch. Prints the training samples per second of each (the reports' `samples_per_second`,
# which leaves out compilation, data loading and evaluation). Run it on a quiet machine.
# Needs nnlc built with `--features mpi` (cargo build --release --features mpi) and Open MPI.
# Usage: tools/mpi_throughput.sh [STEPS]   (training steps per run, default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-300}"
nnlc="${NNLC:-target/release/nnlc}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rate() { python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["timings"]["samples_per_second"]))' "$1"; }
for model in mlp_big cnn; do
  file="bench/models/$model.nnl"
  common=(--epochs 1 --steps-per-epoch "$steps" --no-health --histograms-every 0)
  "$nnlc" run "$file" --threads 2 "${common[@]}" \
    --checkpoint-dir "$work/$model-1x2" --report "$work/$model-1x2.json" >/dev/null 2>&1
  mpirun --allow-run-as-root --oversubscribe -np 2 "$nnlc" run "$file" --threads 1 "${common[@]}" \
    --checkpoint-dir "$work/$model-2x1" --report "$work/$model-2x1.json" >/dev/null 2>&1
  echo "$model: 1 process x 2 threads $(rate "$work/$model-1x2.json") samples/s; 2 ranks x 1 thread $(rate "$work/$model-2x1.json") samples/s"
done
