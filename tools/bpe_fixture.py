#!/usr/bin/env python3
"""Makes tests/fixtures/bpe/: a byte-level BPE `tokenizer.json` trained by Hugging Face's Python
`tokenizers` package (offline) on every 8th word of examples/data/words, and `expected.json`, the
ids Python gives for sample lines. tests/tokenizers.rs loads the file through nnl and requires
the same ids.

    python3 -m venv venv && venv/bin/pip install tokenizers==0.23.3
    venv/bin/python tools/bpe_fixture.py
"""

import gzip
import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

root = Path(__file__).resolve().parent.parent
out = root / "tests/fixtures/bpe"
words = gzip.open(root / "examples/data/words/american-english.txt.gz", "rt", encoding="utf-8").read().split("\n")
words = [w for w in words if w.strip()]

tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(
    vocab_size=400,
    min_frequency=0,
    special_tokens=["<|endoftext|>"],
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    show_progress=False,
)
tok.train_from_iterator(words[::8], trainer)
out.mkdir(parents=True, exist_ok=True)
tok.save(str(out / "tokenizer.json"))

samples = words[3::997] + [
    "the quick brown fox jumps over the lazy dog",
    "Ångström's café, naïve résumé",
    "  two  spaces and a tab\there",
    "numbers 12345 and symbols #@!",
]
expected = [{"text": s, "ids": tok.encode(s).ids} for s in samples]
(out / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n")
print(f"{len(expected)} samples, vocabulary {tok.get_vocab_size()}")
