#!/usr/bin/env python3
"""A direct convolution against nnl's unfold + gemm, on the reference CNN's two convolutions.

PyTorch's CPU convolution is oneDNN's direct (blocked-layout, JIT-compiled AVX-512) kernel, so
timing `torch.nn.Conv2d` forward and backward on the CNN's shapes gives what a direct
convolution costs here. The script prints its times (median of 60 calls, one thread pinned to
CPU 0), then runs `nnlc run --profile` on bench/models/cnn.nnl on the same CPU and prints the
steps of each convolution (unfold, the products, fold). Needs the peers' virtual environment
(../shared/bench/setup.sh):

    python3 tools/conv_direct.py [--python ~/.cache/nnl-peers/venv/bin/python]
"""
import argparse, os, subprocess, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TORCH = r"""
import statistics, time, torch
torch.set_num_threads(1)
def bench(cin, cout, hw, input_grad):
    x = torch.randn(64, cin, hw, hw, requires_grad=input_grad)
    conv = torch.nn.Conv2d(cin, cout, 3)
    g = torch.randn(64, cout, hw - 2, hw - 2)
    forward, backward = [], []
    for i in range(70):
        t0 = time.perf_counter(); y = conv(x); t1 = time.perf_counter()
        y.backward(g); t2 = time.perf_counter()
        x.grad = None; conv.weight.grad = None; conv.bias.grad = None
        if i >= 10:
            forward.append(t1 - t0); backward.append(t2 - t1)
    f, b = 1e3 * statistics.median(forward), 1e3 * statistics.median(backward)
    grads = "weight, bias, input" if input_grad else "weight, bias"
    print(f"direct (oneDNN) conv {cin}->{cout} on {hw}x{hw}: forward {f:.2f} ms, "
          f"backward ({grads}) {b:.2f} ms, total {f + b:.2f} ms")
bench(1, 32, 28, False)
bench(32, 64, 13, True)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=os.path.expanduser("~/.cache/nnl-peers/venv/bin/python"))
    args = ap.parse_args()
    subprocess.run(["taskset", "-c", "0", args.python, "-c", TORCH], check=True)
    nnlc = os.path.join(ROOT, "target", "release", "nnlc")
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["taskset", "-c", "0", nnlc, "run", "bench/models/cnn.nnl",
                              "--threads", "1", "--epochs", "1", "--steps-per-epoch", "200",
                              "--checkpoint-dir", tmp, "--profile"],
                             cwd=ROOT, check=True, capture_output=True, text=True)
    print("nnl (unfold + gemm), the CNN's step on one thread, its convolutions' steps among the")
    print("profile's slowest fifteen (ms per training step):")
    # A node listed twice is also in the step that computes the gradient-health statistics
    # (run on some steps); its first, larger line is the plain step's.
    seen = set()
    for line in (out.stdout + out.stderr).splitlines():
        conv = "fold" in line or ("matmul" in line and ("288" in line or ", 9" in line))
        node = next((w for w in line.split() if w.startswith("%")), None)
        if conv and node not in seen:
            seen.add(node)
            print(line)


if __name__ == "__main__":
    main()
