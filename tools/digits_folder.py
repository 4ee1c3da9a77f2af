#!/usr/bin/env python3
"""Writes scikit-learn's 8x8 digits (examples/data/tabular/digits.csv.gz) as an image folder.

    python3 tools/digits_folder.py [--arrays] [OUT]   (default OUT: examples/data/digits_folder)

OUT/train/<digit>/<index>.png and OUT/test/<digit>/<index>.png: one grey 8x8 PNG per sample,
the last 360 of the file's 1,797 samples being the test set. A pixel's value v (0 to 16) is
written as 15 * v (0 to 240), so the pictures are visible. With --arrays, OUT/train.csv and
OUT/test.csv hold the same pixels and labels as numbers (64 values, then the label, a row per
picture), in the order an `images` source reads the folders (class by class, files sorted): the
arrays the PNGs were written from, for comparing a model trained on either (tests/run.rs).

Only the standard library: the PNGs are written with zlib.
"""

import csv
import gzip
import os
import struct
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "examples", "data", "tabular", "digits.csv.gz")
TEST = 360


def png(width, height, grey):
    """A grey 8-bit PNG of `grey` (row-major bytes)."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\0" + bytes(grey[r * width : (r + 1) * width]) for r in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def main():
    args = sys.argv[1:]
    arrays = "--arrays" in args
    args = [a for a in args if a != "--arrays"]
    out = args[0] if args else os.path.join(ROOT, "examples", "data", "digits_folder")
    with gzip.open(SOURCE, "rt") as f:
        samples = [[int(float(v)) for v in row] for row in csv.reader(f) if row]
    splits = {"train": samples[: len(samples) - TEST], "test": samples[len(samples) - TEST :]}
    start = {"train": 0, "test": len(samples) - TEST}
    for split, rows in splits.items():
        written = []
        for i, row in enumerate(rows):
            pixels, label = [15 * v for v in row[:64]], row[64]
            folder = os.path.join(out, split, str(label))
            os.makedirs(folder, exist_ok=True)
            name = f"{start[split] + i:04d}.png"
            with open(os.path.join(folder, name), "wb") as f:
                f.write(png(8, 8, pixels))
            written.append((str(label), name, pixels, label))
        if not arrays:
            continue
        # The order of an `images` source: class folders by name, then files by name.
        written.sort(key=lambda w: (w[0].encode(), w[1].encode()))
        with open(os.path.join(out, f"{split}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            for _, _, pixels, label in written:
                w.writerow(pixels + [label])
    print(out)


if __name__ == "__main__":
    main()
