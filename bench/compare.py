#!/usr/bin/env python3
"""Training-step time of nnl against PyTorch and JAX, measured in one invocation.

For each model and thread count, runs `nnlc run --report` on the matching example (a bounded
number of steps) and the peers' scripts from ../shared/bench (run.sh), then prints one line
per (model, threads) with the ratios. The ratios compare medians of the step alone, as the
peers time it (each call of the step function on a batch already in memory): nnl's is the
report's `timings.step_ms` of the second epoch. nnl's epoch mean (`epoch-mean`), which also
includes assembling each batch from the data set and the metrics' sums, is printed beside it.

    python3 bench/compare.py [--models mlp_small,tiny,mlp_big,cnn,lstm] [--threads 1,2] [--steps 300]
"""
import argparse, array, io, json, os, random, subprocess, sys, tempfile, zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.environ.get("NNL_PEERS_BENCH", os.path.join(ROOT, "..", "shared", "bench"))
# The nnl example that matches each reference model of ../shared/bench/README.md.
EXAMPLES = {
    "mlp_small": "examples/mnist_mlp.nnl",
    "tiny": "examples/iris.nnl",
    "mlp_big": "bench/models/mlp_big.nnl",
    "cnn": "bench/models/cnn.nnl",
    "lstm": "bench/models/lstm.nnl",
}
LSTM_DATA = os.path.join(HERE, "models", "lstm.npz")


def npy(values, typecode, descr, shape):
    """The bytes of a .npy file (format 1.0) holding `values`."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple(shape)}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return (b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
            + array.array(typecode, values).tobytes())


def write_lstm_data(n=9600):
    """Random normal sequences [n, 32, 16] and random labels for the lstm model (its peers train
    on random data too); written once, beside bench/models/lstm.nnl."""
    if os.path.exists(LSTM_DATA):
        return
    rng = random.Random(0)
    x = npy((rng.gauss(0, 1) for _ in range(n * 32 * 16)), "f", "<f4", (n, 32, 16))
    y = npy((rng.randrange(10) for _ in range(n)), "i", "<i4", (n,))
    with zipfile.ZipFile(LSTM_DATA + ".tmp", "w") as z:
        z.writestr("x.npy", x)
        z.writestr("y.npy", y)
    os.replace(LSTM_DATA + ".tmp", LSTM_DATA)


def nnl_step_ms(example, threads, steps):
    nnlc = os.path.join(ROOT, "target", "release", "nnlc")
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        cmd = [nnlc, "run", example, "--threads", str(threads), "--epochs", "2",
               "--steps-per-epoch", str(steps), "--checkpoint-dir", tmp, "--report", report]
        if threads == 1:
            cmd = ["taskset", "-c", "0"] + cmd
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        with open(report) as f:
            r = json.load(f)
    # The second epoch only: the first includes lowering and warm-up.
    e = r["epochs"][-1]
    epoch_mean = 1e3 * e["train_seconds"] * r["config"]["batch"] / e["samples"]
    return r["timings"]["step_ms"][-1]["median_ms"], epoch_mean


def peer_step_ms(model, threads):
    env = dict(os.environ, MODELS=model, THREADS=str(threads), KINDS="torch_eager jax")
    out = subprocess.run(["bash", os.path.join(PEERS, "run.sh")], env=env,
                         capture_output=True, text=True).stdout
    times = {}
    for line in out.splitlines():
        r = json.loads(line)
        kind = r["fw"] + ("_" + r["mode"] if r.get("mode") else "")
        # torch_bench.py reports microseconds, jax_bench.py milliseconds.
        if "step_us" in r:
            times[kind] = r["step_us"]["median"] / 1e3
        elif "step_ms" in r:
            times[kind] = r["step_ms"]["median"]
    return times, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mlp_small,tiny,mlp_big,cnn,lstm")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=300)
    a = ap.parse_args()
    if "lstm" in a.models.split(","):
        write_lstm_data()
    for model in a.models.split(","):
        for t in map(int, a.threads.split(",")):
            nnl, epoch_mean = nnl_step_ms(EXAMPLES[model], t, a.steps)
            peers, raw = peer_step_ms(model, t)
            cols = " ".join(f"{k} {v:.3f} ms (nnl/{k} {nnl / v:.2f}x)" for k, v in peers.items())
            print(f"{model} {t}t: nnl {nnl:.3f} ms (epoch-mean {epoch_mean:.3f}) | "
                  f"{cols or 'peers unavailable: ' + raw[:200]}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
