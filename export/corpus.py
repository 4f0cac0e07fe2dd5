"""The training corpus: Tatoeba plus `extra/`, filtered, deduplicated against the evaluation sets, split.

`python -m export corpus --out runs/x` writes train.tsv / val.tsv / test.tsv and corpus.json (what each
source gave, what each filter removed, and the credit line of every source used) into a run directory;
`python -m export train --out runs/x` then trains on it; `--repeat eng-pol.tsv=3` weights a source by repeating
its training pairs (docs/quality.md says which weighting was measured). What each kind of example becomes:

- sentence pairs (Tatoeba and the game, help and documentation catalogues): kept, after the noise filters;
- interface labels (LibreOffice's short menu strings): only its full sentences (4+ words ending in . ! ?),
  because a label translated out of context ("Close" -> "Zamknij") teaches little and often the wrong case;
- dictionary entries (FreeDict): the headword and its first equivalent, notes removed, as a one-word pair:
  they give the vocabulary words of written text that dialogue never uses.

Every pair whose English or Polish side matches a sentence of `dev/` (after normalising case, spaces and
punctuation) is dropped, and so is every English sentence of the Tatoeba test split given by --test-from,
so that split keeps measuring the same thing across models.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import unicodedata
from collections import Counter
from pathlib import Path

from .data import read_tsv, split_by_source, write_tsv

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# file -> (kind, credit line, licence). The model card and README list every source used from here.
SOURCES = {
    "eng-pol.tsv": ("sentences", "Tatoeba (tatoeba.org) contributors, via manythings.org/anki", "CC BY 2.0 FR"),
    "extra/cdda.tsv": ("sentences", "Cataclysm: Dark Days Ahead contributors", "CC BY-SA 3.0"),
    "extra/wesnoth.tsv": ("sentences", "The Battle for Wesnoth Project", "GPL-2.0-or-later"),
    "extra/freeciv.tsv": ("sentences", "Freeciv project", "GPL-2.0-or-later"),
    "extra/shattered_pd.tsv": ("sentences", "Evan Debenham and contributors (Shattered Pixel Dungeon)", "GPL-3.0"),
    "extra/widelands.tsv": ("sentences", "Widelands Development Team", "GPL-2.0-or-later"),
    "extra/gnome_help.tsv": ("sentences", "GNOME Documentation Project", "CC BY-SA 3.0"),
    "extra/gcompris.tsv": ("sentences", "GCompris developers (KDE)", "GPL-3.0-or-later"),
    "extra/warzone2100.tsv": ("sentences", "Warzone 2100 Project", "GPL-2.0-or-later"),
    "extra/hedgewars.tsv": ("sentences", "Hedgewars project", "GPL-2.0"),
    "extra/flare.tsv": ("sentences", "Flare project contributors", "CC BY-SA 3.0"),
    "extra/7kaa.tsv": ("sentences", "Enlight Software / 7kaa contributors", "GPL-2.0-or-later"),
    "extra/debian_handbook.tsv": ("sentences", "Raphaël Hertzog, Roland Mas and translators (The Debian "
                                  "Administrator's Handbook)", "GPL-2.0-or-later or CC BY-SA 3.0"),
    "extra/libreoffice_ui.tsv": ("labels", "The Document Foundation / LibreOffice contributors", "MPL-2.0"),
    "extra/freedict-eng-pol.dictionary.tsv": ("dictionary", "FreeDict project", "GFDL-1.2-or-later"),
}
DEV_SETS = ["dev/flores200-dev.eng-pol.tsv", "dev/ud-pud.eng-pol.tsv"]


def normalise(s: str) -> str:
    s = unicodedata.normalize("NFKC", s).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", s).split())


def noise(en: str, pl: str) -> str | None:
    """Why a sentence pair is noise, or None. Thresholds chosen by reading what each one removes."""
    if normalise(en) == normalise(pl):
        return "untranslated"
    if len(en) > 300 or len(pl) > 360:
        return "too long"
    if len(en) >= 20 and not 0.5 <= len(pl) / len(en) <= 2.2:
        return "length ratio"
    if re.search(r"[<>{}\[\]\\|_^~]|%[sd]|\$\w|\t", en + pl):
        return "markup"
    if re.search(r"[a-zA-Z]", en) is None or re.search(r"[a-zA-Ząćęłńóśźż]", pl) is None:
        return "no letters"
    return None


def dictionary_pair(row: list[str]) -> tuple[str, str] | None:
    """FreeDict 'depend<TAB>zależeć (on - od) (upon - od)<TAB>V' -> ('depend', 'zależeć')."""
    en = row[0].strip()
    pl = re.sub(r"\([^)]*\)", "", row[1]).split(",")[0].split(";")[0].strip()
    if not en or not pl or len(en.split()) > 3 or len(pl.split()) > 3 or re.search(r"[^\w\s'-]", en + pl):
        return None
    return en, pl


def read_source(path: Path, kind: str) -> list[tuple[str, str]]:
    if kind == "dictionary":
        rows = [line.rstrip("\n").split("\t") for line in path.open(encoding="utf-8")]
        return [p for p in (dictionary_pair(r) for r in rows if len(r) >= 2) if p]
    pairs = read_tsv(path)
    if kind == "labels":
        pairs = [(en, pl) for en, pl in pairs if len(en.split()) >= 4 and en[-1] in ".!?"]
    return pairs


def build(data: Path, test_from: Path | None, n_val: int, seed: int, repeat: dict[str, int] | None = None):
    repeat = repeat or {}
    dev = set()
    for name in DEV_SETS:
        for en, pl in read_tsv(data / name):
            dev |= {normalise(en), normalise(pl)}
    test_en = {normalise(en) for en, _ in read_tsv(test_from)} if test_from else set()
    stats, pairs, seen = {}, [], set()
    for name, (kind, credit, licence) in SOURCES.items():
        raw = read_source(data / name, kind)
        dropped = Counter()
        kept = 0
        for en, pl in raw:
            why = "evaluation set" if normalise(en) in dev or normalise(pl) in dev else \
                "Tatoeba test split" if normalise(en) in test_en else \
                (noise(en, pl) if kind != "dictionary" else None)
            key = (normalise(en), normalise(pl))
            if why is None and key in seen:
                why = "duplicate"
            if why:
                dropped[why] += 1
                continue
            seen.add(key)
            pairs.append((en, pl, name))
            kept += 1
        stats[name] = {"kind": kind, "credit": credit, "licence": licence, "read": len(raw), "kept": kept,
                       "dropped": dict(dropped), "repeat": repeat.get(name, 1)}
        print(f"{name:42s} {kind:10s} read {len(raw):6d}  kept {kept:6d}  dropped {dict(dropped)}", flush=True)
    # validation: English sentences of the sentence sources only (early stopping on what the service is for)
    sent = [(en, pl) for en, pl, name in pairs if SOURCES[name][0] == "sentences"]
    train_s, val, _ = split_by_source(sent, n_val, 0, seed)
    val_en = {en for en, _ in val}
    train = [(en, pl) for en, pl, name in pairs if en not in val_en for _ in range(repeat.get(name, 1))]
    random.Random(seed).shuffle(train)
    return train, val, stats


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--data", default=str(DATA), help="the shared data folder (eng-pol.tsv, extra/, dev/)")
    p.add_argument("--test-from", default="models/eng-pol/test.tsv",
                   help="the Tatoeba test split to keep out of training and copy as the run's test.tsv")
    p.add_argument("--val", type=int, default=1000, help="English sentences held out for validation")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--repeat", nargs="*", default=[], metavar="SOURCE=N",
                   help="weight a source by repeating its training pairs N times, e.g. eng-pol.tsv=3")


def run(args) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    test_from = Path(args.test_from) if args.test_from else None
    repeat = {}
    for item in args.repeat:
        name, _, n = item.partition("=")
        if name not in SOURCES or not n.isdigit() or int(n) < 1:
            raise SystemExit(f"--repeat {item}: expected SOURCE=N with SOURCE one of {', '.join(SOURCES)}")
        repeat[name] = int(n)
    train, val, stats = build(Path(args.data), test_from, args.val, args.seed, repeat)
    write_tsv(out / "train.tsv", train)
    write_tsv(out / "val.tsv", val)
    if test_from:
        write_tsv(out / "test.tsv", read_tsv(test_from))
    (out / "corpus.json").write_text(json.dumps({"train": len(train), "val": len(val), "sources": stats},
                                                indent=1, ensure_ascii=False))
    print(f"corpus: {len(train)} train / {len(val)} val pairs -> {out}", flush=True)
    return out
