#!/usr/bin/env python3
"""The baseline of examples/char_gpt.nnl: a character bigram model on the same split.

Reproduces what `nnlc run examples/char_gpt.nnl` trains and validates on, with the data
pipeline's documented rules (src/data/mod.rs, "Splits" and "Randomness"; src/data/text.rs):
documents are the non-blank lines; `split val = 0.1 of source, shuffle(seed: 42)` takes the last
round(0.1 n) documents after a Fisher-Yates shuffle by Rng(42, [2]); the character ids are
fitted on the training documents (0 <unk>, 1 end of document, then the characters in code-point
order); with `shuffle: true` each split's documents are streamed in the order of a shuffle by
Rng(seed, [6, FNV-1a(split name)]); the stream is ⏎ d1 ⏎ d2 ⏎ … ⏎, cut into windows of `context`
ids every `context` ids, each predicting the next id at every position.

The bigram model predicts id b after id a with (count(a, b) + k) / (count(a) + k V) from the
training windows' (input, target) pairs, k = 1 (Laplace) unless --add is given. It prints the
validation perplexity, exp of the mean negative log-likelihood over every target of the
validation windows, which is what `perplexity` reports for val.

    python3 tools/char_bigram.py [--seed 1] [--add 1]
"""

import argparse
import gzip
import math
from collections import Counter
from pathlib import Path

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def bits(key, j):
    return mix((key + ((j + 1) * GOLDEN)) & MASK)


class Rng:
    def __init__(self, seed, path):
        key = seed
        for p in path:
            key = bits(key, p)
        self.key, self.draws = key, 0

    def below(self, n):
        b = bits(self.key, self.draws)
        self.draws += 1
        return (b * n) >> 64

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


def fnv1a(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def windows(ids, context):
    n = (len(ids) - context - 1) // context + 1
    for k in range(n):
        s = k * context
        yield ids[s : s + context], ids[s + 1 : s + context + 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=Path(__file__).parent.parent / "examples/data/words/american-english.txt.gz")
    ap.add_argument("--seed", type=int, default=1, help="the run's seed (the train block's `seed`)")
    ap.add_argument("--split-seed", type=int, default=42)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--context", type=int, default=32)
    ap.add_argument("--add", type=float, default=1.0, help="additive smoothing k")
    args = ap.parse_args()

    text = gzip.open(args.data, "rt", encoding="utf-8").read()
    docs = [l.removesuffix("\r") for l in text.split("\n")]
    docs = [d for d in docs if d.strip()]
    n = len(docs)
    k = round(args.fraction * n)
    order = list(range(n))
    Rng(args.split_seed, [2]).shuffle(order)
    val_rows, train_rows = sorted(order[n - k :]), sorted(order[: n - k])

    chars = sorted({c for r in train_rows for c in docs[r]})
    index = {c: i + 2 for i, c in enumerate(chars)}
    vocab = len(chars) + 2

    def stream(rows, split):
        rows = list(rows)
        Rng(args.seed, [6, fnv1a(split)]).shuffle(rows)
        ids = [1]
        for r in rows:
            ids.extend(index.get(c, 0) for c in docs[r])
            ids.append(1)
        return ids

    pairs = Counter()
    for x, y in windows(stream(train_rows, "train"), args.context):
        pairs.update(zip(x, y))
    firsts = Counter()
    for (a, _), c in pairs.items():
        firsts[a] += c

    nll, count = 0.0, 0
    for x, y in windows(stream(val_rows, "val"), args.context):
        for a, b in zip(x, y):
            p = (pairs[(a, b)] + args.add) / (firsts[a] + args.add * vocab)
            nll -= math.log(p)
            count += 1
    print(f"documents: {n - k} train, {k} val; {vocab} ids ({len(chars)} characters)")
    print(f"character bigram (add-{args.add:g}) validation perplexity: {math.exp(nll / count):.4f} over {count} targets")


if __name__ == "__main__":
    main()
