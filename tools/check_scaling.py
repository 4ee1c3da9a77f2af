#!/usr/bin/env python3
"""How `nnlc check` scales with the size of a file: time and peak memory at several sizes.

Generates `.nnl` files of the given sizes in megabytes (layers, models and functions with
shapes to infer, in the proportions of the examples), checks each with the release binary under
GNU time, and prints wall seconds, CPU seconds (user and system, on every thread), peak
resident memory and the CPU seconds and memory per megabyte. A speed measurement: run it on a
quiet machine (the CPU seconds are the figure to compare when it is not).

    cargo build --release
    python3 tools/check_scaling.py 1 5 50

With `--python`, the same for CPython's own parser and compiler on the same program written as
PyTorch modules (`ast.parse` and `compile` of a file of the same size, no types checked), for
comparison:

    python3 tools/check_scaling.py --python 5 50
"""

import os
import subprocess
import sys
import tempfile

NNLC = os.path.join(os.path.dirname(__file__), "..", "target", "release", "nnlc")

HEAD = "use std.nn.{Dense, Conv2d, LayerNorm}\n\n"


def block(i: int) -> str:
    return f"""# block {i}: a residual MLP block, a model around it and a helper
layer Block{i}(width: int = 32)(x: f32[B, D]) -> f32[B, width] {{
  let h = x |> Dense(width) |> relu
  let g = h * 2.0 + 1.0 - h / 3.0
  g |> Dense(width) |> tanh
}}

fn scale{i}(x: f32[B, N], k: f32) -> f32[B, N] {{
  let m = mean(x, axis: -1, keep: true)
  (x - m) * k + m
}}

model Net{i}(hidden: int = 64)(x: f32[B, 8]) -> f32[B, 4] {{
  let h = x |> Block{i}(hidden) |> LayerNorm(hidden)
  scale{i}(h, 0.5) |> Dense(4)
}}

"""


PYTHON_HEAD = "import torch\nfrom torch import nn\n\n"


def python_block(i: int) -> str:
    """`block(i)` as PyTorch modules."""
    return f"""# block {i}: a residual MLP block, a model around it and a helper
class Block{i}(nn.Module):
    def __init__(self, d, width=32):
        super().__init__()
        self.fc1 = nn.Linear(d, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        g = h * 2.0 + 1.0 - h / 3.0
        return torch.tanh(self.fc2(g))


def scale{i}(x, k):
    m = x.mean(dim=-1, keepdim=True)
    return (x - m) * k + m


class Net{i}(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.block = Block{i}(8, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, 4)

    def forward(self, x):
        h = self.norm(self.block(x))
        return self.out(scale{i}(h, 0.5))


"""


def generate(megabytes: float, path: str, head: str = HEAD, block=block) -> int:
    target = int(megabytes * 1e6)
    size = 0
    with open(path, "w") as f:
        f.write(head)
        size += len(head)
        i = 0
        while size < target:
            text = block(i)
            f.write(text)
            size += len(text)
            i += 1
    return size


def measure(path: str, command: list[str] | None = None) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds, peak resident KiB and the exit code of `nnlc check PATH`
    (or of `command`)."""
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%e %U %S %M", *(command or [NNLC, "check", path])],
        capture_output=True,
        text=True,
    )
    wall, user, system, kib = out.stderr.strip().splitlines()[-1].split()
    return float(wall), float(user) + float(system), int(kib), out.returncode


def python_main(sizes: list[float]) -> None:
    print(f"{'MB':>6} {'step':>9} {'seconds':>8} {'CPU s':>6} {'peak MiB':>9}")
    steps = {
        "ast.parse": "import ast, sys; ast.parse(open(sys.argv[1]).read())",
        "compile": "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for mb in sizes:
            path = os.path.join(tmp, f"file_{mb}.py")
            size = generate(mb, path, PYTHON_HEAD, python_block)
            for step, code in steps.items():
                wall, cpu, kib, status = measure(path, [sys.executable, "-c", code, path])
                if status != 0:
                    sys.exit(f"{step} failed on the {mb} MB file (exit {status})")
                print(f"{size / 1e6:6.1f} {step:>9} {wall:8.2f} {cpu:6.2f} {kib / 1024:9.0f}")


def main() -> None:
    args = sys.argv[1:]
    python = "--python" in args
    sizes = [float(a) for a in args if a != "--python"] or [1, 5, 50]
    if python:
        python_main(sizes)
        return
    print(f"{'MB':>6} {'seconds':>8} {'CPU s':>6} {'peak MiB':>9} {'CPU s/MB':>9} {'MiB/MB':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for mb in sizes:
            path = os.path.join(tmp, f"file_{mb}.nnl")
            size = generate(mb, path)
            wall, cpu, kib, code = measure(path)
            if code != 0:
                sys.exit(f"nnlc check failed on the {mb} MB file (exit {code})")
            actual = size / 1e6
            print(
                f"{actual:6.1f} {wall:8.2f} {cpu:6.2f} {kib / 1024:9.0f} "
                f"{cpu / actual:9.2f} {kib / 1024 / actual:7.0f}"
            )


if __name__ == "__main__":
    main()
