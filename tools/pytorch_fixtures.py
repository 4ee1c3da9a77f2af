"""Makes the PyTorch fixtures of tests/pytorch_weights.rs (run offline; the tests only read the
files): an MLP and a small CNN with batch norm, trained in PyTorch on MNIST, saved with
safetensors.torch.save_file, with their logits on the 10,000 test images and their test
accuracy.

usage: python tools/pytorch_fixtures.py   (needs torch, safetensors, numpy)

The MLP's modules are named as nnl names its layers (dense_1, dense_2), so `init "mlp.safetensors"`
loads it by convention; the CNN keeps PyTorch's Sequential names (features.0, head), which its
.nnl file maps with `init(…, map: […])`. Images are scaled as nnl's `scale(1 / 255)` does: in
double precision, then rounded to float32.
"""

import gzip
import json
import pathlib

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "examples/data/mnist"
OUT = ROOT / "tests/fixtures/pytorch"


def idx(name):
    raw = gzip.open(DATA / name).read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def images(name):
    return (idx(name).astype(np.float64) * (1 / 255)).astype(np.float32)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense_1 = nn.Linear(784, 128)
        self.dense_2 = nn.Linear(128, 10)

    def forward(self, x):
        return self.dense_2(torch.relu(self.dense_1(x.reshape(-1, 784))))


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 5, padding=2), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Linear(400, 10)

    def forward(self, x):
        return self.head(self.features(x.reshape(-1, 1, 28, 28)).flatten(1))


def train(model, x, y, epochs):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        for idxs in torch.randperm(len(x), generator=g).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idxs]), y[idxs]).backward()
            opt.step()
    model.eval()


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x = torch.from_numpy(images("train-images.idx3-ubyte.gz"))
    y = torch.from_numpy(idx("train-labels.idx1-ubyte.gz").astype(np.int64))
    tx = torch.from_numpy(images("t10k-images.idx3-ubyte.gz"))
    ty = idx("t10k-labels.idx1-ubyte.gz")
    summary = {}
    for name, model, epochs in [("mlp", Mlp(), 2), ("cnn", Cnn(), 1)]:
        train(model, x, y, epochs)
        with torch.no_grad():
            logits = model(tx).numpy().astype(np.float32)
        accuracy = float((logits.argmax(1) == ty).mean())
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, OUT / f"{name}.safetensors")
        np.save(OUT / f"{name}_logits.npy", logits)
        summary[name] = {"test_accuracy": accuracy, "epochs": epochs, "torch": torch.__version__}
        print(name, accuracy)
    (OUT / "expected.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
