"""Builds examples/data/debian/descriptions.csv: short descriptions of Debian packages and their
archive section, a small text-classification corpus made offline from the package index apt
keeps (`/var/lib/apt/lists/*_bookworm_main_binary-amd64_Packages*`, lz4-compressed).

Five sections with topics a reader can tell apart (games, graphics, net, science, sound); the
first line of each package's Description, packages whose description is shared with another
package of any section dropped (they would leak between splits), then 400 per section drawn with
a fixed seed and the rows shuffled, so that `split … of source` without `shuffle` (the last rows)
is a random split that Python reproduces (tools/text_classify_baseline.py).

Usage: python3 tools/debian_descriptions.py PACKAGES_FILE (decompressed) > descriptions.csv
"""

import csv
import random
import sys
from collections import Counter, defaultdict

SECTIONS = ["games", "graphics", "net", "science", "sound"]
PER_SECTION = 400


def packages(path):
    pkg = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if pkg:
                    yield pkg
                pkg = {}
            elif not line.startswith(" ") and ":" in line:
                key, value = line.split(":", 1)
                pkg[key] = value.strip()
    if pkg:
        yield pkg


def main():
    rows = [
        (p["Description"], p["Section"])
        for p in packages(sys.argv[1])
        if "Description" in p and "Section" in p
    ]
    counts = Counter(d for d, _ in rows)
    by_section = defaultdict(list)
    for desc, section in rows:
        if section in SECTIONS and counts[desc] == 1:
            by_section[section].append(desc)
    rng = random.Random(18)
    chosen = []
    for s in SECTIONS:
        descs = sorted(by_section[s])
        chosen += [(d, s) for d in rng.sample(descs, PER_SECTION)]
    rng.shuffle(chosen)
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["description", "section"])
    out.writerows(chosen)


if __name__ == "__main__":
    main()
