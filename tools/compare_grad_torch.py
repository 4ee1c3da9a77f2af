"""Compares `nnlc grad` on examples/mnist_mlp.nnl with PyTorch on the same weights and batch.

Usage (from the repository root, with numpy, safetensors and torch installed):
    cargo build --release && python3 tools/compare_grad_torch.py
Prints the loss of both and the largest relative difference of each gradient.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file

def main():
    rng = np.random.default_rng(0)
    x = rng.random((64, 784), dtype=np.float32)
    y = rng.integers(0, 10, size=64)  # int64, as NumPy makes it
    tmp = tempfile.mkdtemp()
    batch, params, grads = (os.path.join(tmp, n) for n in ("b.npz", "p.safetensors", "g.safetensors"))
    np.savez(batch, x=x, y=y)
    nnlc = os.environ.get("NNLC", "target/release/nnlc")
    subprocess.run([nnlc, "grad", "examples/mnist_mlp.nnl", "--inputs", batch,
                    "--write-params", params, "--seed", "7", "-o", grads], check=True)
    p, g = load_file(params), load_file(grads)

    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(p["Mlp.dense_1.w"].T))
        model[0].bias.copy_(torch.tensor(p["Mlp.dense_1.b"]))
        model[2].weight.copy_(torch.tensor(p["Mlp.dense_2.w"].T))
        model[2].bias.copy_(torch.tensor(p["Mlp.dense_2.b"]))
    loss = torch.nn.functional.cross_entropy(model(torch.tensor(x)), torch.tensor(y))
    loss.backward()
    theirs = {
        "Mlp.dense_1.w": model[0].weight.grad.numpy().T,
        "Mlp.dense_1.b": model[0].bias.grad.numpy(),
        "Mlp.dense_2.w": model[2].weight.grad.numpy().T,
        "Mlp.dense_2.b": model[2].bias.grad.numpy(),
    }
    print(f"loss: nnl {float(g['loss']):.7f}  torch {loss.item():.7f}")
    worst = 0.0
    for name, t in theirs.items():
        ours = g[name]
        rel = np.linalg.norm(ours - t) / max(np.linalg.norm(t), 1e-30)
        worst = max(worst, rel)
        print(f"{name:16} {str(ours.shape):12} relative difference {rel:.2e}")
    sys.exit(0 if worst < 1e-5 and abs(float(g["loss"]) - loss.item()) < 1e-5 else 1)

if __name__ == "__main__":
    main()
