#!/usr/bin/env python3
"""How `nnlc check` scales with the size of a file: time and peak memory at several sizes.

Generates `.nnl` files of the given sizes in megabytes (layers, models and functions with
shapes to infer, in the proportions of the examples), checks each with the release binary under
GNU time, and prints wall seconds, CPU seconds (user and system, on every thread), peak
resident memory and the CPU seconds and memory per megabyte. A speed measurement: run it on a
quiet machine (the CPU seconds are the figure to compare when it is not).

    cargo build --release
    python3 tools/check_scaling.py 1 5 50
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


def generate(megabytes: float, path: str) -> int:
    target = int(megabytes * 1e6)
    size = 0
    with open(path, "w") as f:
        f.write(HEAD)
        size += len(HEAD)
        i = 0
        while size < target:
            text = block(i)
            f.write(text)
            size += len(text)
            i += 1
    return size


def measure(path: str) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds, peak resident KiB and the exit code of `nnlc check PATH`."""
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%e %U %S %M", NNLC, "check", path],
        capture_output=True,
        text=True,
    )
    wall, user, system, kib = out.stderr.strip().splitlines()[-1].split()
    return float(wall), float(user) + float(system), int(kib), out.returncode


def main() -> None:
    sizes = [float(a) for a in sys.argv[1:]] or [1, 5, 50]
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
