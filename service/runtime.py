"""The model directory and its onnxruntime sessions: encoder + one decoder step.

Everything about shapes and ids comes from model.json; nothing is hard-coded here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .errors import ModelLoadError

ENCODER_INPUTS = ["src"]
ENCODER_OUTPUTS = ["enc", "keys", "mask", "state"]
DECODER_INPUTS = ["y_prev", "state", "enc", "keys", "mask"]
DECODER_OUTPUTS = ["logprobs", "new_state", "attention"]
REQUIRED_KEYS = ["format_version", "architecture", "vocab", "files"]


@dataclass(frozen=True)
class ModelInfo:
    """The parts of model.json the service needs, checked on load."""

    raw: dict
    pad_id: int
    bos_id: int
    eos_id: int
    unk_id: int
    src_vocab: int
    tgt_vocab: int
    state_shape: tuple[int, int, int]   # (layers, parts, hidden) per sequence

    @classmethod
    def load(cls, model_dir: Path) -> "ModelInfo":
        path = model_dir / "model.json"
        if not model_dir.is_dir():
            raise ModelLoadError(f"model directory {model_dir} does not exist")
        if not path.is_file():
            raise ModelLoadError(f"{path} is missing: is {model_dir} a model directory written by `python -m export onnx`?")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{path} is not valid JSON: {e}") from None
        missing = [k for k in REQUIRED_KEYS if k not in raw]
        if missing:
            raise ModelLoadError(f"{path} lacks the keys {missing}")
        for key in ("encoder", "decoder_step", "source_tokenizer", "target_tokenizer"):
            f = model_dir / raw["files"].get(key, f"<no files.{key}>")
            if not f.is_file():
                raise ModelLoadError(f"{path} names {key} file {f.name}, which is missing from {model_dir}")
        v, a = raw["vocab"], raw["architecture"]
        try:
            return cls(raw=raw, pad_id=int(v["pad_id"]), bos_id=int(v["bos_id"]), eos_id=int(v["eos_id"]),
                       unk_id=int(v["unk_id"]), src_vocab=int(v["source_size"]), tgt_vocab=int(v["target_size"]),
                       state_shape=tuple(int(x) for x in a["decoder_state_shape"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelLoadError(f"{path} is incomplete: {e!r}") from None


def resolve_providers(provider: str) -> list[str]:
    """cpu | cuda | auto -> the onnxruntime provider list. An explicit cuda that is not there is an error."""
    available = ort.get_available_providers()
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if provider == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ModelLoadError(
                "TRANSLATOR_PROVIDER=cuda, but onnxruntime's CUDAExecutionProvider is not available "
                f"(available: {', '.join(available)}). Install onnxruntime-gpu with a matching CUDA runtime "
                "on a machine with an NVIDIA GPU, or use --provider cpu / auto.")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if provider == "auto":
        return (["CUDAExecutionProvider", "CPUExecutionProvider"] if "CUDAExecutionProvider" in available
                else ["CPUExecutionProvider"])
    raise ModelLoadError(f"unknown provider {provider!r}: use cpu, cuda or auto")


class Runtime:
    """Two ORT sessions. Thread counts are set deliberately, and intra-op spinning is off: the decoding
    loop is many small runs, and spinning threads would fight the Python loop for the cores."""

    def __init__(self, model_dir: Path, info: ModelInfo, provider: str = "auto",
                 intra_threads: int = 0, inter_threads: int = 1):
        providers = resolve_providers(provider)
        so = ort.SessionOptions()
        so.intra_op_num_threads = intra_threads
        so.inter_op_num_threads = inter_threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        files = info.raw["files"]
        try:
            self.encoder = ort.InferenceSession(str(model_dir / files["encoder"]), so, providers=providers)
            self.decoder = ort.InferenceSession(str(model_dir / files["decoder_step"]), so, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for corrupt graphs
            raise ModelLoadError(f"cannot load the ONNX graphs in {model_dir}: {e}") from None
        self.provider = self.decoder.get_providers()[0]
        if provider == "cuda" and self.provider != "CUDAExecutionProvider":
            raise ModelLoadError("TRANSLATOR_PROVIDER=cuda, but onnxruntime fell back to "
                                 f"{self.provider} (CUDA libraries missing?)")
        self._check_signature(info)

    def _check_signature(self, info: ModelInfo) -> None:
        got = ([i.name for i in self.encoder.get_inputs()], [o.name for o in self.encoder.get_outputs()],
               [i.name for i in self.decoder.get_inputs()], [o.name for o in self.decoder.get_outputs()])
        if got != (ENCODER_INPUTS, ENCODER_OUTPUTS, DECODER_INPUTS, DECODER_OUTPUTS):
            raise ModelLoadError(f"the ONNX graphs' inputs/outputs {got} are not the ones this service expects")
        V = self.decoder.get_outputs()[0].shape[-1]
        if isinstance(V, int) and V != info.tgt_vocab:
            raise ModelLoadError(f"model.json says target vocabulary {info.tgt_vocab}, the decoder graph outputs {V}")
        st = self.decoder.get_inputs()[1].shape[1:]
        if all(isinstance(x, int) for x in st) and tuple(st) != info.state_shape:
            raise ModelLoadError(f"model.json says decoder state {info.state_shape}, the decoder graph takes {tuple(st)}")

    def encode(self, src: np.ndarray):
        """src (B, S) int64 -> enc (B, S, 2H), keys (B, S, A), mask (B, S) bool, state (B, L, K, Hd)."""
        return self.encoder.run(None, {"src": src})

    def step(self, y_prev: np.ndarray, state, enc, keys, mask):
        """One decoder step for every row -> logprobs (B, V), new state, attention (B, S)."""
        return self.decoder.run(None, {"y_prev": y_prev, "state": state, "enc": enc, "keys": keys, "mask": mask})
