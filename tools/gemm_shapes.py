#!/usr/bin/env python3
"""The matrix products of the reference models' training steps, timed by each candidate method
on one and two threads. One command, from the repository root:

    python3 tools/gemm_shapes.py [--models mlp_small,tiny,mlp_big,cnn,lstm]
                                 [--methods gemm,split,openblas,openblas_split,dnnl,dnnl_split]
                                 [--threads 1,2]

Builds nnlc and the timing program (tools/gemm_bench.rs), reads each model's products from its
compiled plan (`nnlc ir --stage plan`: shapes and the strides of the views the JIT passes, so a
transposed operand is timed as it lies), forward and backward, a product inside a scan counted
once per time step, and runs the timing program once per method and thread count (one thread:
pinned to CPU 0, as bench/compare.py pins nnl). Prints GFLOP/s per product and method (the
best of 9 samples), the fastest method, and each model's total product time per step.

Methods: gemm (the gemm crate threading itself, nnl before tensor/product.rs), split (the gemm
crate on one band of the output per thread: nnl's default now), openblas / openblas_split and
dnnl / dnnl_split (Debian's libopenblas-dev and libdnnl-dev, loaded at run time; skipped when
absent). Results' bits are compared with the one-thread gemm result, with the method's own
on one thread, and with the method's when a transposed operand is copied row-major first (the
interpreter's layout): the condition for the JIT to stay bit-identical to it.
Timings on a busy machine are noise: run it on a quiet one.
"""
import argparse, json, os, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {
    "mlp_small": "examples/mnist_mlp.nnl",
    "tiny": "examples/iris.nnl",
    "mlp_big": "bench/models/mlp_big.nnl",
    "cnn": "bench/models/cnn.nnl",
    "lstm": "bench/models/lstm.nnl",
}
METHODS = ["gemm", "split", "openblas", "openblas_split", "dnnl", "dnnl_split"]
STEP = re.compile(r"^(\s*)s\d+: (\w+)")
MATMUL = re.compile(r"^\s*s\d+: matmul %\d+ \[([\d, ]*)\] @ \[([\d, ]*)\]")
SCAN = re.compile(r"^\s*s\d+: scan %\d+ over (\d+) steps")
VIEW = re.compile(r"b\d+(?:\+\d+)?\[([^\]]*)\]")


def view(text):
    """[(dim, stride)] of a plan view `bN+off[d:s d:s ...]`."""
    return [tuple(int(x) for x in part.split(":")) for part in text.split()]


def products(model, path):
    """The products of a model's plan: dicts with m, n, k, batch, strides and weight."""
    plan = subprocess.run(
        [os.path.join(ROOT, "target", "release", "nnlc"), "ir", "--stage", "plan",
         "--allow-path", "examples", path],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout.splitlines()
    out, scans = [], []  # scans: stack of (indent, steps)
    for i, line in enumerate(plan):
        step = STEP.match(line)
        if not step:
            continue
        indent = len(step.group(1))
        while scans and indent <= scans[-1][0]:
            scans.pop()
        scan = SCAN.match(line)
        if scan:
            scans.append((indent, int(scan.group(1))))
            continue
        mm = MATMUL.match(line)
        if not mm:
            continue
        reads = plan[i + 1].strip()
        views = VIEW.findall(reads)
        if not reads.startswith("reads") or len(views) != 2:
            sys.exit(f"{model}: cannot read the operands of: {line.strip()}\n  {reads}")
        a, b = view(views[0]), view(views[1])
        batch_dims = a[:-2]
        batch = 1
        for d, _ in batch_dims:
            batch *= d
        if len(batch_dims) > 1:
            sys.exit(f"{model}: more than one batch axis: {line.strip()}")
        weight = 1
        for _, steps in scans:
            weight *= steps
        (m, a_rs), (k, a_cs) = a[-2], a[-1]
        (_, b_rs), (n, b_cs) = b[-2], b[-1]
        out.append(dict(
            model=model, weight=weight, batch=batch, m=m, n=n, k=k,
            a=(a_rs, a_cs, batch_dims[0][1] if batch_dims else 0),
            b=(b_rs, b_cs, b[0][1] if batch_dims else 0)))
    return out


def shape_name(p):
    ta = "ᵀ" if p["a"][1] != 1 else ""
    tb = "ᵀ" if p["b"][1] != 1 else ""
    batch = f"{p['batch']}×" if p["batch"] > 1 else ""
    scan = f" ×{p['weight']}" if p["weight"] > 1 else ""
    return f"{batch}[{p['m']},{p['k']}]{ta}@[{p['k']},{p['n']}]{tb}{scan}"


def run(method, threads, lines):
    exe = os.path.join(ROOT, "target", "release", "examples", "gemm_bench")
    cmd = [exe, method, str(threads)]
    if threads == 1:
        cmd = ["taskset", "-c", "0"] + cmd
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    r = subprocess.run(cmd, input="".join(lines), capture_output=True, text=True, env=env)
    if r.returncode != 0:
        print(f"note: {method} on {threads} thread(s) skipped: {r.stderr.strip()}")
        return None
    return [json.loads(l) for l in r.stdout.splitlines()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "nnlc",
                    "--example", "gemm_bench"], cwd=ROOT, check=True)
    prods = []
    for model in args.models.split(","):
        prods += products(model, MODELS[model])
    lines = [f"{p['model']} {p['batch']} {p['m']} {p['n']} {p['k']} "
             f"{' '.join(map(str, p['a']))} {' '.join(map(str, p['b']))}\n" for p in prods]
    thread_counts = [int(t) for t in args.threads.split(",")]
    results = {}  # (method, threads) -> [json per product]
    for threads in thread_counts:
        for method in args.methods.split(","):
            r = run(method, threads, lines)
            if r is not None:
                results[(method, threads)] = r
    reference = results.get(("gemm", 1)) or results.get(("gemm", thread_counts[0]))
    for threads in thread_counts:
        methods = [m for m in args.methods.split(",") if (m, threads) in results]
        print(f"\n## {threads} thread(s): GFLOP/s per product (the last columns list the methods"
              " whose bits differ from one-thread gemm's, from their own on one thread, and when"
              " the operands are copied row-major first)\n")
        print("| model | product | " + " | ".join(methods) +
              " | fastest | ≠ gemm | ≠ 1 thread | ≠ row-major |")
        print("|---|---|" + "---:|" * len(methods) + "---|---|---|---|")
        for i, p in enumerate(prods):
            flops = 2 * p["batch"] * p["m"] * p["n"] * p["k"]
            secs = {m: results[(m, threads)][i]["seconds"] for m in methods}
            cells = [f"{flops / secs[m] / 1e9:.1f}" for m in methods]
            best = min(methods, key=secs.get)
            differ = [m for m in methods
                      if reference and results[(m, threads)][i]["hash"] != reference[i]["hash"]]
            layout = [m for m in methods if not results[(m, threads)][i]["layout_invariant"]]
            moved = [m for m in methods if (m, 1) in results and
                     results[(m, threads)][i]["hash"] != results[(m, 1)][i]["hash"]]
            print(f"| {p['model']} | {shape_name(p)} | " + " | ".join(cells) +
                  f" | {best} | {','.join(differ) or '-'} | {','.join(moved) or '-'} |"
                  f" {','.join(layout) or '-'} |")
        print(f"\n## {threads} thread(s): product time per training step, ms\n")
        print("| model | " + " | ".join(methods) + " | fastest |")
        print("|---|" + "---:|" * len(methods) + "---|")
        for model in args.models.split(","):
            idx = [i for i, p in enumerate(prods) if p["model"] == model]
            tot = {m: sum(results[(m, threads)][i]["seconds"] * prods[i]["weight"] for i in idx)
                   for m in methods}
            print(f"| {model} | " + " | ".join(f"{1e3 * tot[m]:.3f}" for m in methods) +
                  f" | {min(methods, key=tot.get)} |")


if __name__ == "__main__":
    main()
