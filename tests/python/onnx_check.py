"""Checks an ONNX model exported by nnl and runs it with ONNX Runtime.

usage: onnx_check.py MODEL.onnx --input NAME=FILE.npy [...] --expected FILE.npy [--tolerance T]

Runs onnx.checker.check_model(full_check=True), then the model on the inputs, and compares its
output `out` with the expected one (what `nnlc predict` wrote): the difference must be at most
T, relative to the value where it is larger than 1 in magnitude. Prints one JSON line with the
figures; exits 1 when the check or the comparison fails.
"""

import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def nodes(graph):
    """Every node of a graph and of its subgraphs (a Scan's body)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from nodes(attr.g)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--expected", required=True)
    ap.add_argument("--tolerance", type=float, default=1e-5)
    args = ap.parse_args()

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    feeds = {}
    for spec in args.input:
        name, path = spec.split("=", 1)
        feeds[name] = np.load(path)
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    (got,) = session.run(["out"], feeds)
    expected = np.load(args.expected)
    got = got.astype(np.float64).reshape(expected.shape)
    expected = expected.astype(np.float64)
    diff = np.abs(got - expected)
    scaled = diff / np.maximum(1.0, np.abs(expected))
    result = {
        "samples": int(expected.shape[0]),
        "max_abs_diff": float(diff.max(initial=0.0)),
        "max_scaled_diff": float(scaled.max(initial=0.0)),
        "nodes": sum(1 for _ in nodes(model.graph)),
        "ops": sorted({n.op_type for n in nodes(model.graph)}),
        "finite": bool(np.isfinite(got).all()),
    }
    result["ok"] = result["max_scaled_diff"] <= args.tolerance and result["finite"]
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
