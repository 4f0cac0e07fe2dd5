"""Rebuild load/sentences.txt: 300 English sentences from the shipped model's held-out test split.

The test split (models/eng-pol/test.tsv, written by `python -m export train`: split by English sentence,
seeded) holds sentences the model never saw in training. Its distinct English sentences are put in three
length bands (1-4 words, 5-8, 9 or more) and 100 are drawn from each with a fixed seed, so the load mixes
short, medium and long inputs (the corpus itself is mostly short: 6 words on average).

    python load/make_sentences.py [--test models/eng-pol/test.tsv] [--out load/sentences.txt]
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
BANDS = ((1, 4), (5, 8), (9, 10_000))
PER_BAND, SEED = 100, 0


def draw(test_tsv: Path) -> list[str]:
    english = sorted({line.split("\t", 1)[0].strip() for line in test_tsv.read_text(encoding="utf-8").splitlines()
                      if "\t" in line})
    rng, out = random.Random(SEED), []
    for lo, hi in BANDS:
        band = [s for s in english if lo <= len(s.split()) <= hi]
        out += rng.sample(band, min(PER_BAND, len(band)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--test", type=Path, default=HERE.parent / "models" / "eng-pol" / "test.tsv")
    p.add_argument("--out", type=Path, default=HERE / "sentences.txt")
    args = p.parse_args()
    sentences = draw(args.test)
    header = ("# English sentences for the Locust load test, one a line (lines starting with # are skipped).\n"
              "# Drawn by load/make_sentences.py from the held-out test split models/eng-pol/test.tsv:\n"
              f"# {PER_BAND} per length band (1-4, 5-8, 9+ words), seed {SEED}.\n"
              "# Tatoeba (https://tatoeba.org), CC-BY 2.0 FR.\n")
    args.out.write_text(header + "\n".join(sentences) + "\n", encoding="utf-8")
    print(f"wrote {len(sentences)} sentences to {args.out}")


if __name__ == "__main__":
    main()
