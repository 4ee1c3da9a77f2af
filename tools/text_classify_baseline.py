"""The baseline for examples/text_classify.nnl: a bag-of-words logistic regression (scikit-learn)
on the same split of examples/data/debian/descriptions.csv.

The example's data block takes `split test = 0.2 of source` and then `split val = 0.2 of train`
without shuffling (the CSV's rows are already in a random order), so the test split is the last
20% of the rows, validation the last 20% of the rest, training the first rows.

Usage: ~/.cache/nnl-peers/venv/bin/python tools/text_classify_baseline.py
"""

import csv
from pathlib import Path

from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
rows = list(csv.reader(open(ROOT / "examples/data/debian/descriptions.csv", encoding="utf-8")))[1:]
n = len(rows)
n_test = round(0.2 * n)
rest = n - n_test
n_val = round(0.2 * rest)
train, val, test = rows[: rest - n_val], rows[rest - n_val : rest], rows[rest:]

for name, vectorizer in [
    ("words", CountVectorizer(lowercase=True)),
    ("words+bigrams", CountVectorizer(lowercase=True, ngram_range=(1, 2))),
]:
    x_train = vectorizer.fit_transform([d for d, _ in train])
    best = None
    for c in [0.1, 0.3, 1.0, 3.0, 10.0]:
        model = LogisticRegression(C=c, max_iter=5000).fit(x_train, [s for _, s in train])
        acc = lambda split: model.score(vectorizer.transform([d for d, _ in split]), [s for _, s in split])
        if best is None or acc(val) > best[1]:
            best = (c, acc(val), acc(test))
    c, val_acc, test_acc = best
    print(
        f"bag of {name}, logistic regression (C={c} chosen on val): "
        f"val accuracy {val_acc:.4f}, test accuracy {test_acc:.4f} "
        f"(train {len(train)}, val {len(val)}, test {len(test)})"
    )
