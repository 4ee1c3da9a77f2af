#!/usr/bin/env python3
"""Compile time from source to native training step for each reference model (median of N runs).

"front" is `nnlc check FILE` (parse, resolve, check) as wall time; "step" is the report's
timings.compile_seconds (lowering, the gradient, the fused step, the JIT, for every graph the
run uses) of a one-step run.

    python3 tools/compile_time.py [--runs 5] [--nnlc target/release/nnlc] [--no-health]

`--no-health` leaves out the second step graph that computes the gradient-health statistics
(compiled alongside the plain step unless `nnlc run --no-health`), to compare with builds that
predate it.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from compare import EXAMPLES, write_lstm_data  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nnlc", default=os.path.join(ROOT, "target", "release", "nnlc"))
    ap.add_argument("--no-health", action="store_true")
    args = ap.parse_args()
    write_lstm_data()
    print(f"{'model':<10} {'front ms':>9} {'step ms':>9} {'total ms':>9}")
    for model, example in EXAMPLES.items():
        front, step = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run([args.nnlc, "check", example], cwd=ROOT, check=True, capture_output=True)
            front.append(1e3 * (time.perf_counter() - t))
            with tempfile.TemporaryDirectory() as tmp:
                report = os.path.join(tmp, "report.json")
                subprocess.run([args.nnlc, "run", example, "--threads", "1", "--epochs", "1",
                                "--steps-per-epoch", "1", "--checkpoint-dir", tmp,
                                "--report", report] + (["--no-health"] if args.no_health else []),
                               cwd=ROOT, check=True, capture_output=True)
                with open(report) as f:
                    step.append(1e3 * json.load(f)["timings"]["compile_seconds"])
        f, s = statistics.median(front), statistics.median(step)
        print(f"{model:<10} {f:9.1f} {s:9.1f} {f + s:9.1f}")


if __name__ == "__main__":
    main()
