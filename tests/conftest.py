"""A tiny real model, trained and exported by the project's own export code, once per test run."""
from __future__ import annotations

import argparse
import itertools
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = REPO / "models" / "eng-pol"

# A small hand-written corpus, expanded from templates: enough for a tiny model to learn something.
SUBJECTS = [("I", "Ja"), ("We", "My"), ("They", "Oni"), ("You", "Ty")]
VERBS = {  # English verb -> Polish form per subject
    "see": {"I": "widzę", "We": "widzimy", "They": "widzą", "You": "widzisz"},
    "like": {"I": "lubię", "We": "lubimy", "They": "lubią", "You": "lubisz"},
    "have": {"I": "mam", "We": "mamy", "They": "mają", "You": "masz"},
}
OBJECTS = [("a cat", "kota"), ("a dog", "psa"), ("the house", "dom"), ("the book", "książkę"),
           ("the car", "samochód"), ("a friend", "przyjaciela"), ("the tea", "herbatę")]
EXTRA = [("How are you?", "Jak się masz?"), ("Thank you.", "Dziękuję."), ("Good morning.", "Dzień dobry."),
         ("Where is the station?", "Gdzie jest dworzec?"), ("I don't know.", "Nie wiem."),
         ("It's raining.", "Pada deszcz."), ("Help me!", "Pomóż mi!"), ("Yes.", "Tak."), ("No.", "Nie.")]


def fixture_pairs() -> list[tuple[str, str]]:
    pairs = []
    for (en_s, pl_s), verb, (en_o, pl_o) in itertools.product(SUBJECTS, VERBS, OBJECTS):
        pairs.append((f"{en_s} {verb} {en_o}.", f"{pl_s} {VERBS[verb][en_s]} {pl_o}."))
        pairs.append((f"{en_s} {verb} {en_o} too.", f"{pl_s} też {VERBS[verb][en_s]} {pl_o}."))
    pairs += EXTRA * 6
    random.Random(0).shuffle(pairs)
    return pairs


def train_args(data: Path, out: Path, **over) -> argparse.Namespace:
    from export import train

    p = argparse.ArgumentParser()
    train.add_args(p)
    args = p.parse_args(["--data", str(data), "--out", str(out)])
    for k, v in dict(emb=32, enc_hidden=32, dec_hidden=64, attn=32, vocab=120, epochs=12, val=8, test=8,
                     batch_size=16, lr=5e-3, dropout=0.1, quiet=True, patience=100, threads=1).items():
        setattr(args, k, v)
    for k, v in over.items():
        setattr(args, k, v)
    return args


def build_model(tmp: Path, cell: str) -> tuple[Path, Path]:
    """Train (real export code) and export a tiny model; returns (run_dir, model_dir)."""
    from export import onnx_export, train
    from export.data import write_tsv

    data = tmp / "corpus.tsv"
    write_tsv(data, fixture_pairs())
    run_dir = tmp / f"run-{cell}"
    train.run(train_args(data, run_dir, cell=cell))
    model_dir = tmp / f"model-{cell}"
    onnx_export.run(argparse.Namespace(run=str(run_dir), out=str(model_dir), force=False, version="test",
                                       no_eval=False, eval_beams=[1, 3]))
    return run_dir, model_dir


@pytest.fixture(scope="session")
def built_lstm(tmp_path_factory):
    return build_model(tmp_path_factory.mktemp("lstm"), "lstm")


@pytest.fixture(scope="session")
def model_dir(built_lstm) -> Path:
    """The tiny LSTM model directory, as `python -m export onnx` wrote it."""
    return built_lstm[1]


@pytest.fixture(scope="session")
def run_dir(built_lstm) -> Path:
    return built_lstm[0]


@pytest.fixture(scope="session")
def gru_model_dir(tmp_path_factory) -> Path:
    return build_model(tmp_path_factory.mktemp("gru"), "gru")[1]


@pytest.fixture(scope="session")
def translator(model_dir):
    from service.translator import Translator

    return Translator(model_dir, provider="cpu", intra_threads=1)
