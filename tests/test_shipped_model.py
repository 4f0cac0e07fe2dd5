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
    assert meta["quality"]["greedy" if default == 1 else f"beam{default}"]["chrf"] >= 50
    tr = Translator(SHIPPED_MODEL, provider="cpu")
    text = tr.translate_batch(["How are you?"], beam_size=Settings().default_beam)[0].text
    assert text and text != "How are you?"
    assert any(w in text.lower() for w in ("jak", "się", "masz", "czujesz")), text


def test_shipped_model_is_small_enough_to_commit():
    size = sum(f.stat().st_size for f in SHIPPED_MODEL.iterdir() if f.is_file())
    assert size < 60 * 1024 * 1024
