#!/usr/bin/env bash
# Whether overlapping the gradient exchange with the backward pass would pay (docs/distributed.md,
# "Overlap"): for each model, 2 MPI ranks of 1 thread train STEPS steps and rank 0's report says
# per step how long this process spent in its shard's forward and backward passes, in the
# exchanges (all-gather and sum in rank order, waiting for the other rank included) and in the
# update. The exchange an overlap could hide is bounded by the backward work left after the
# first gradients are final, at most the backward pass (about 2/3 of forward + backward). Run it
# on a quiet machine. Needs nnlc built with `--features mpi` and Open MPI.
# Usage: tools/overlap_time.sh [STEPS]   (training steps per run, default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-200}"
nnlc="${NNLC:-target/release/nnlc}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '%-13s %10s %12s %12s %11s %11s\n' model gradients "fwd+bwd ms" "exchange ms" "update ms" "step ms"
for file in examples/lstm_sine.nnl examples/mnist_cnn.nnl examples/mnist_mlp.nnl \
            bench/models/cnn.nnl bench/models/mlp_big.nnl tests/fixtures/distributed/cnn_bn_sync.nnl; do
  name="$(basename "$(dirname "$file")")/$(basename "$file" .nnl)"
  report="$work/$(basename "$file" .nnl).json"
  mpirun --allow-run-as-root --oversubscribe -np 2 "$nnlc" run "$file" --threads 1 --epochs 1 \
    --steps-per-epoch "$steps" --no-health --histograms-every 0 \
    --checkpoint-dir "$work/ckpt-$(basename "$file" .nnl)" --report "$report" >/dev/null 2>&1
  python3 - "$report" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["timings"]["data_parallel"]
step = t["shards_ms"] + t["exchange_ms"] + t["update_ms"]
print(f'{sys.argv[2]:<13} {r["parameters"]:>10,} {t["shards_ms"]:>12.3f} {t["exchange_ms"]:>12.3f} {t["update_ms"]:>11.3f} {step:>11.3f}')
PY
done
