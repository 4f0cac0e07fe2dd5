"""The model the repository ships loads and translates."""
from __future__ import annotations

import json

from conftest import SHIPPED_MODEL
from service.translator import Translator


def test_shipped_model_translates_how_are_you():
    meta = json.loads((SHIPPED_MODEL / "model.json").read_text())
    assert "CC-BY 2.0 FR" in meta["training"]["attribution"]
    from service.settings import Settings

    default = Settings().default_beam                  # the floor holds for the service's default decoding
    assert meta["quality"]["greedy" if default == 1 else f"beam{default}"]["chrf"] >= 49   # the test split
    assert meta["placeholders"] and {s["file"] for s in meta["training"]["sources"]} >= {"eng-pol.tsv", "extra/cdda.tsv"}
    assert all(s["credit"] and s["license"] for s in meta["training"]["sources"])   # every source credited
    tr = Translator(SHIPPED_MODEL, provider="cpu")
    text = tr.translate_batch(["How are you?"], beam_size=Settings().default_beam)[0].text
    assert text and text != "How are you?"
    assert any(w in text.lower() for w in ("jak", "się", "masz", "czujesz")), text


def test_shipped_model_is_small_enough_to_commit():
    size = sum(f.stat().st_size for f in SHIPPED_MODEL.iterdir() if f.is_file())
    assert size < 60 * 1024 * 1024


def test_shipped_model_translates_the_same_alone_and_in_a_batch():
    """What a sentence is batched with never changes its translation, nor its score in any bit: the int8 graphs
    quantize activations per row (with onnxruntime's per-tensor dynamic quantization 72 of 320 test sentences
    changed) and the source axis comes in whole blocks (translator.SOURCE_BLOCK). `python -m bench.invariance`
    checks the whole evaluation sets."""
    tr = Translator(SHIPPED_MODEL, provider="cpu")
    texts = [ln.split("\t")[0] for ln in (SHIPPED_MODEL / "test.tsv").read_text().splitlines()[:128]]
    for beam in (1, 3):
        batched = [r.hypotheses[0] for r in tr.translate_batch(texts, beam_size=beam)]
        alone = [tr.translate_batch([t], beam_size=beam)[0].hypotheses[0] for t in texts]
        assert [(h.text, h.score) for h in batched] == [(h.text, h.score) for h in alone]
