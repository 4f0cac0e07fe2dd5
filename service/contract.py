"""The model directory's contract, defined once for the exporter (export/) and the service (service/).

- Special token ids: every tokenizer is trained with them (export/data.py) and the model and the decoding loop use
  them (export/model.py's config, service/translator.py through ModelCard.vocab).
- The two ONNX graphs' input and output names, in order: written by export/onnx_export.py, checked on load by
  service/runtime.py.
- model.json: `ModelCard`, a typed msgspec Struct. The exporter builds one and writes it (`write`); the service
  reads it back (`read`), so a field is named and typed in one place. Fields the service does not interpret
  (training details, quality figures, ...) are plain dicts.

The service never imports torch, so this module imports nothing but msgspec.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
FORMAT_VERSION = 1

ENCODER_INPUTS = ["src"]                                  # (B, S) int64 source ids, padded with PAD_ID
ENCODER_OUTPUTS = ["enc", "keys", "mask", "state"]        # (B,S,2H) (B,S,A) (B,S) bool, (B,L,K,Hd) initial state
DECODER_INPUTS = ["y_prev", "state", "enc", "keys", "mask"]
DECODER_OUTPUTS = ["logprobs", "new_state", "attention"]  # (B,V) log-probs, (B,L,K,Hd), (B,S) weights


class Architecture(msgspec.Struct, kw_only=True):
    type: str
    cell: str
    decoder_state_shape: tuple[int, int, int]    # (layers, parts, hidden) per sequence
    encoder: str = ""
    attention: str = ""
    decoder: str = ""
    emb: int = 0
    enc_hidden: int = 0
    dec_hidden: int = 0
    attn: int = 0
    enc_layers: int = 1
    dec_layers: int = 1
    parameters: int = 0


class Vocab(msgspec.Struct, kw_only=True):
    source_size: int
    target_size: int
    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID
    unk_id: int = UNK_ID


class Files(msgspec.Struct, kw_only=True):
    encoder: str = "encoder.onnx"
    decoder_step: str = "decoder_step.onnx"
    source_tokenizer: str = "source.spm.model"
    target_tokenizer: str = "target.spm.model"
    test_set: str | None = "test.tsv"


class ModelCard(msgspec.Struct, kw_only=True, omit_defaults=True):
    """model.json."""

    format_version: int
    architecture: Architecture
    vocab: Vocab
    files: Files
    name: str | None = None
    version: str | None = None
    task: dict[str, str] | None = None
    onnx: dict[str, Any] | None = None
    tokenizer: dict[str, Any] | None = None
    placeholders: bool = False               # numbers, URLs, e-mails, rare names as ⟦i⟧ (service/placeholders.py)
    training: dict[str, Any] | None = None
    created: str | None = None
    parity: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None


REQUIRED = [f.encode_name for f in msgspec.inspect.type_info(ModelCard).fields if f.required]


def graph_io() -> dict[str, dict[str, list[str]]]:
    """The graphs' names as model.json records them ("onnx" section)."""
    return {"encoder": {"inputs": ENCODER_INPUTS, "outputs": ENCODER_OUTPUTS},
            "decoder_step": {"inputs": DECODER_INPUTS, "outputs": DECODER_OUTPUTS}}


def write(path: Path, card: ModelCard) -> None:
    path.write_text(json.dumps(msgspec.to_builtins(card), indent=2, ensure_ascii=False))


class ContractError(ValueError):
    """model.json is missing, not JSON, or not a ModelCard; the message says which."""


def read(path: Path) -> tuple[ModelCard, dict[str, Any]]:
    """model.json -> (the card, the raw dict as written)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ContractError(f"{path} is not valid JSON: {e}") from None
    missing = [k for k in REQUIRED if k not in raw] if isinstance(raw, dict) else REQUIRED
    if missing:
        raise ContractError(f"{path} lacks the keys {missing}")
    try:
        return msgspec.convert(raw, ModelCard), raw
    except msgspec.ValidationError as e:
        raise ContractError(f"{path} is incomplete: {e}") from None
