"""The model directory and its onnxruntime sessions: encoder + one decoder step.

Everything about shapes and ids comes from model.json (service/contract.py); nothing is hard-coded here.

Between decoder steps a batch's tensors (encoder outputs, keys, mask, decoder state) live in a row store:
`HostRows` keeps numpy arrays and runs the sessions with plain `run()`; `BoundRows` keeps OrtValues on the
session's device and runs them through I/O binding, so on CUDA the state of step t is the state input of
step t+1 without a trip to the host, and only the log-probs (and attention when asked for) come back.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import contract, rowgraphs
from .contract import DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS, Files
from .errors import ModelLoadError
from .settings import IO_BINDING

@dataclass(frozen=True)
class ModelInfo:
    """The parts of model.json (service/contract.py's ModelCard) the service needs, checked on load."""

    raw: dict
    files: Files
    pad_id: int
    bos_id: int
    eos_id: int
    unk_id: int
    src_vocab: int
    tgt_vocab: int
    state_shape: tuple[int, int, int]   # (layers, parts, hidden) per sequence
    placeholders: bool = False          # trained with placeholder symbols (service/placeholders.py)

    @classmethod
    def load(cls, model_dir: Path) -> "ModelInfo":
        path = model_dir / "model.json"
        if not model_dir.is_dir():
            raise ModelLoadError(f"model directory {model_dir} does not exist")
        if not path.is_file():
            raise ModelLoadError(f"{path} is missing: is {model_dir} a model directory written by `python -m export onnx`?")
        try:
            card, raw = contract.read(path)
        except contract.ContractError as e:
            raise ModelLoadError(str(e)) from None
        for key in ("encoder", "decoder_step", "source_tokenizer", "target_tokenizer"):
            f = model_dir / getattr(card.files, key)
            if not f.is_file():
                raise ModelLoadError(f"{path} names {key} file {f.name}, which is missing from {model_dir}")
        v = card.vocab
        return cls(raw=raw, files=card.files, pad_id=v.pad_id, bos_id=v.bos_id, eos_id=v.eos_id, unk_id=v.unk_id,
                   src_vocab=v.source_size, tgt_vocab=v.target_size,
                   state_shape=card.architecture.decoder_state_shape, placeholders=card.placeholders)


def _options(intra_threads: int, inter_threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = intra_threads
    so.inter_op_num_threads = inter_threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


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
    loop is many small runs, and spinning threads would fight the Python loop for the cores.

    io_binding: auto | on | off (or a bool). auto = on for CUDA, off for CPU. On CPU binding gains nothing: the
    plain `run()` already hands numpy buffers to ORT without a copy, and binding costs Python calls per step
    (8 binds, get_outputs); docs/benchmarks/settings.md has the measurement. Results are identical either way
    (tests/test_iobinding.py).

    encoder_threads: intra-op threads of the encoder session (0 = intra_threads). The engine runs the encoder on
    its own thread while the decoder steps, so one thread there leaves the other core to the decoder.

    gather: where the I/O-binding path moves rows when the batch changes: "numpy" (views of the CPU OrtValues,
    numpy indexing, the default on CPU), "graph" (service/rowgraphs.py's ONNX graphs run as sessions on the same
    device, the default on CUDA; the tests run it on CPU), or "auto"."""

    def __init__(self, model_dir: Path, info: ModelInfo, provider: str = "auto",
                 intra_threads: int = 0, inter_threads: int = 1, io_binding: str | bool = "auto",
                 gather: str = "auto", encoder_threads: int = 0):
        providers = resolve_providers(provider)
        if isinstance(io_binding, bool):
            io_binding = "on" if io_binding else "off"
        if io_binding not in IO_BINDING:
            raise ModelLoadError(f"unknown io_binding {io_binding!r}: use auto, on or off")
        if gather not in ("auto", "numpy", "graph"):
            raise ModelLoadError(f"unknown gather {gather!r}: use auto, numpy or graph")
        so = _options(intra_threads, inter_threads)
        files = info.files
        try:
            self.encoder = ort.InferenceSession(str(model_dir / files.encoder),
                                                _options(encoder_threads or intra_threads, inter_threads),
                                                providers=providers)
            self.decoder = ort.InferenceSession(str(model_dir / files.decoder_step), so, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for corrupt graphs
            raise ModelLoadError(f"cannot load the ONNX graphs in {model_dir}: {e}") from None
        self.provider = self.decoder.get_providers()[0]
        if provider == "cuda" and self.provider != "CUDAExecutionProvider":
            raise ModelLoadError("TRANSLATOR_PROVIDER=cuda, but onnxruntime fell back to "
                                 f"{self.provider} (CUDA libraries missing?)")
        self._check_signature(info)
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self.io_binding = io_binding == "on" or (io_binding == "auto" and self.device == "cuda")
        self.gather = ("graph" if self.device == "cuda" else "numpy") if gather == "auto" else gather
        if self.gather == "numpy" and self.device != "cpu":
            raise ModelLoadError("gather=numpy needs the CPU provider (numpy cannot index device memory)")
        self._options, self._providers, self._graphs = so, providers, None

    def rows(self) -> "HostRows | BoundRows":
        """An empty row store for one DecodeBatch: bound (I/O binding) or host, as configured."""
        return BoundRows(self) if self.io_binding else HostRows(self)

    def graphs(self) -> dict[str, ort.InferenceSession]:
        """service/rowgraphs.py's gather/take/join graphs as sessions on this runtime's provider (opened once)."""
        if self._graphs is None:
            self._graphs = {name: ort.InferenceSession(data, self._options, providers=self._providers)
                            for name, data in rowgraphs.load().items()}
        return self._graphs

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
        return self.encoder.run(None, {ENCODER_INPUTS[0]: src})

    def step(self, y_prev: np.ndarray, state, enc, keys, mask):
        """One decoder step for every row -> logprobs (B, V), new state, attention (B, S)."""
        return self.decoder.run(None, dict(zip(DECODER_INPUTS, (y_prev, state, enc, keys, mask))))


# -- row stores: a batch's tensors between decoder steps --------------------------------------------------
class HostRows:
    """Numpy arrays on the host; each step is a plain `session.run` (the default on CPU).

    enc/keys/mask live in buffers with room for more rows than the batch has: the batch is the first n rows
    (a contiguous view, which ORT takes without a copy), newcomers are written into the free rows after them,
    and `take` moves only the rows whose position changes. The source axis is as long as the longest source in
    the batch: it grows (one copy) when a longer sentence arrives and shrinks when the longest ones have left.
    Padding positions hold zeros and mask False, so they never change a result."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self._buf: list[np.ndarray] | None = None            # enc, keys, mask: (capacity, S, ...)
        self.state = None
        self.n = 0                                            # rows

    @property
    def enc(self) -> np.ndarray | None:
        return self._buf[0][:self.n] if self.n else None

    @property
    def keys(self) -> np.ndarray | None:
        return self._buf[1][:self.n] if self.n else None

    @property
    def mask(self) -> np.ndarray | None:
        return self._buf[2][:self.n] if self.n else None

    def encode(self, src: np.ndarray) -> list[np.ndarray]:
        """The encoder's outputs for src (one row per sentence); uses nothing of this store (any thread)."""
        return self.rt.encode(src)

    @staticmethod
    def split(new: list[np.ndarray], j: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """`encode`'s outputs for sentences [:j] and [j:] (views)."""
        return [x[:j] for x in new], [x[j:] for x in new]

    def add(self, new: list[np.ndarray], rep: np.ndarray) -> None:
        """Appends the rows of `encode`'s outputs, repeated by rep, after the existing ones."""
        enc, keys, mask, state = new
        n, m, S = self.n, len(rep), enc.shape[1]
        buf = self._buf
        if n == 0:                                # an empty batch takes the newcomers' source length
            if buf is None or len(buf[0]) < m or buf[0].shape[1] != S:
                self._buf = buf = _empty_like([enc, keys, mask], max(m, len(buf[0]) if buf else 0), S)
        elif n + m > len(buf[0]) or S > buf[0].shape[1]:
            buf = self._realloc(max(n + m, 2 * n), max(S, buf[0].shape[1]))
        for b, new in zip(buf, (enc, keys, mask)):
            b[n:n + m, :S] = new[rep]
            b[n:n + m, S:] = 0
        state = state[rep]
        self.state = np.concatenate([self.state, state]) if n else state
        self.n = n + m

    def _realloc(self, rows: int, S: int) -> list[np.ndarray]:
        """New buffers for `rows` rows of S source positions, the current rows copied in (padded or trimmed)."""
        old, n = self._buf, self.n
        self._buf = _empty_like(old, rows, S)
        s = min(S, old[0].shape[1])
        for b, o in zip(self._buf, old):
            b[:n, :s] = o[:n, :s]
            b[:n, s:] = 0
        return self._buf

    def step(self, y: np.ndarray, attention: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """One decoder step for every row -> log-probs (n, V) and attention (n, S) on the host (attention may be
        returned even when not asked for); the new state replaces the old one."""
        n = self.n
        logp, self.state, a = self.rt.step(y, self.state, self._buf[0][:n], self._buf[1][:n], self._buf[2][:n])
        return logp, a

    def take(self, rows: list[int], src_len: int) -> None:
        """Row i of the sources (enc, keys, mask) becomes old row rows[i]; only rows that change place are copied.
        The source axis shrinks to src_len when that saves a quarter of it or more; no rows empties the store."""
        if not rows:
            return self.clear()
        idx = np.array(rows, dtype=np.int64)
        dst = np.flatnonzero(idx != np.arange(len(idx)))
        if len(dst):
            for b in self._buf:
                b[dst] = b[idx[dst]]
        self.n = len(rows)
        S = self._buf[0].shape[1]
        if src_len <= S * 3 // 4:
            self._realloc(len(self._buf[0]), src_len)

    def reorder(self, rows: list[int]) -> None:
        """state <- state[rows] (after `take`, for the same new rows); nothing moves when rows are the state's
        rows in order."""
        if self.state is not None and not _identity(rows, len(self.state)):
            self.state = self.state[np.array(rows, dtype=np.int64)]

    def host(self) -> list[np.ndarray]:
        """enc, keys, mask, state as host arrays (tests and debugging)."""
        return [self.enc, self.keys, self.mask, self.state]

    def clear(self) -> None:
        self.state = None
        self.n = 0


class BoundRows:
    """OrtValues on the session's device, run through I/O binding.

    The decoder's state output is bound to the device and becomes the next step's state input as it is; the
    sources are bound once and re-bound only when the rows change; y_prev goes up from the host each step, and
    only the log-probs (and the attention when a sequence asked for it) are bound to host memory. Moving rows
    (beam origins, retiring, joining) happens with numpy on views of the CPU OrtValues, or with the graphs of
    service/rowgraphs.py on the device (rt.gather)."""

    def __init__(self, rt: Runtime):
        self.rt, self.device = rt, rt.device
        self.enc = self.keys = self.mask = self.state = None     # OrtValues
        self.n = 0
        self._dec = rt.decoder.io_binding()
        self._sources_bound = False
        self._graph = rt.gather == "graph"

    # OrtValues <-> host: on CPU, OrtValue.numpy() is a view and ortvalue_from_numpy shares the array's memory
    def _ov(self, arr: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr), self.device, 0)

    def _run(self, sess: ort.InferenceSession, ortvalues: dict, host: dict, outputs: list[str]) -> list:
        b = sess.io_binding()
        for name, v in ortvalues.items():
            b.bind_ortvalue_input(name, v)
        for name, arr in host.items():
            b.bind_cpu_input(name, arr)
        for name in outputs:
            b.bind_output(name, self.device, 0)
        sess.run_with_iobinding(b)
        return b.get_outputs()

    def encode(self, src: np.ndarray) -> list[ort.OrtValue]:
        """enc, keys, mask, state for src on the device; uses nothing of this store (any thread)."""
        return self._run(self.rt.encoder, {}, {ENCODER_INPUTS[0]: src}, ENCODER_OUTPUTS)

    def split(self, new: list[ort.OrtValue], j: int) -> tuple[list[ort.OrtValue], list[ort.OrtValue]]:
        """`encode`'s outputs for sentences [:j] and [j:]: host copies of the CPU OrtValues, or the take/gather
        graphs on the device."""
        if not self._graph:
            arrs = [x.numpy() for x in new]
            return [self._ov(np.array(x[:j])) for x in arrs], [self._ov(np.array(x[j:])) for x in arrs]
        n, S = new[0].shape()[0], new[0].shape()[1]

        def part(idx: np.ndarray) -> list[ort.OrtValue]:
            out = self._take_graph(new[:3], idx, S)
            out.append(self._run(self.rt.graphs()["gather"], {"state": new[3]}, {"rows": idx}, ["out"])[0])
            return out
        return part(np.arange(j, dtype=np.int64)), part(np.arange(j, n, dtype=np.int64))

    def add(self, new: list[ort.OrtValue], rep: np.ndarray) -> None:
        if not self._graph:
            old = [x.numpy() for x in (self.enc, self.keys, self.mask, self.state)] if self.n else None
            joined = [self._ov(x) for x in _join_arrays(old, [x.numpy()[rep] for x in new])]
        elif self.n:
            names = ["enc", "keys", "mask", "state"]
            joined = self._run(self.rt.graphs()["join"],
                               {**dict(zip(names, (self.enc, self.keys, self.mask, self.state))),
                                **{"new_" + k: v for k, v in zip(names, new)}},
                               {"rep": rep.astype(np.int64)}, ["enc_out", "keys_out", "mask_out", "state_out"])
        else:
            joined = self._take_graph(new[:3], rep.astype(np.int64), new[0].shape()[1])
            joined.append(self._run(self.rt.graphs()["gather"], {"state": new[3]}, {"rows": rep.astype(np.int64)},
                                    ["out"])[0])
        self.enc, self.keys, self.mask, self.state = joined
        self.n = len(rep) + self.n
        self._sources_bound = False

    def step(self, y: np.ndarray, attention: bool) -> tuple[np.ndarray, np.ndarray | None]:
        b = self._dec
        y_prev, state, enc, keys, mask = DECODER_INPUTS
        logprobs, new_state, attn = DECODER_OUTPUTS
        if not self._sources_bound:
            b.bind_ortvalue_input(enc, self.enc)
            b.bind_ortvalue_input(keys, self.keys)
            b.bind_ortvalue_input(mask, self.mask)
            self._sources_bound = True
        b.bind_cpu_input(y_prev, y)
        b.bind_ortvalue_input(state, self.state)
        # outputs are bound afresh every step: a binding left in place would have ORT write the next step into
        # the same buffers, i.e. into the state this step reads
        b.bind_output(logprobs, "cpu")
        b.bind_output(new_state, self.device, 0)
        b.bind_output(attn, "cpu" if attention else self.device, 0)
        self.rt.decoder.run_with_iobinding(b)
        logp, self.state, a = b.get_outputs()
        return logp.numpy(), (np.array(a.numpy()) if attention else None)

    def take(self, rows: list[int], src_len: int) -> None:
        if not rows:
            return self.clear()
        idx = np.array(rows, dtype=np.int64)
        if self._graph:
            self.enc, self.keys, self.mask = self._take_graph([self.enc, self.keys, self.mask], idx, src_len)
        else:
            self.enc, self.keys, self.mask = (self._ov(x.numpy()[idx, :src_len]) for x in (self.enc, self.keys, self.mask))
        self._sources_bound = False

    def reorder(self, rows: list[int]) -> None:
        if _identity(rows, self.n):
            return                                  # the state output of the last step is the next input as it is
        idx = np.array(rows, dtype=np.int64)
        if self._graph:
            self.state = self._run(self.rt.graphs()["gather"], {"state": self.state}, {"rows": idx}, ["out"])[0]
        else:
            self.state = self._ov(self.state.numpy()[idx])
        self.n = len(rows)

    def _take_graph(self, sources: list, idx: np.ndarray, src_len: int) -> list:
        return self._run(self.rt.graphs()["take"], dict(zip(("enc", "keys", "mask"), sources)),
                         {"rows": idx, "src_len": np.array([src_len], dtype=np.int64)},
                         ["enc_out", "keys_out", "mask_out"])

    def host(self) -> list[np.ndarray]:
        return [x.numpy() for x in (self.enc, self.keys, self.mask, self.state)]

    def clear(self) -> None:
        self.enc = self.keys = self.mask = self.state = None
        self.n = 0
        self._sources_bound = False


def _empty_like(like: list[np.ndarray], rows: int, S: int) -> list[np.ndarray]:
    """Uninitialised (rows, S, ...) arrays with the dtypes and trailing shapes of `like` (only the rows in use
    are ever read, and those are written in full, padding included)."""
    return [np.empty((rows, S) + x.shape[2:], dtype=x.dtype) for x in like]


def _identity(rows: list[int], n: int) -> bool:
    return len(rows) == n and rows == list(range(n))


def _join_arrays(old: list[np.ndarray] | None, new: list[np.ndarray]) -> list[np.ndarray]:
    """[enc, keys, mask, state] of the batch (or None) and of the newcomers -> concatenated, the sources padded
    along the source axis (zeros / False) to the longer of the two."""
    if old is None:
        return new
    S = max(old[0].shape[1], new[0].shape[1])
    return [np.concatenate([o, n]) if o.ndim == 4 else np.concatenate([_pad_to(o, S), _pad_to(n, S)])
            for o, n in zip(old, new)]


def _pad_to(x: np.ndarray, S: int) -> np.ndarray:
    """Pad axis 1 (source length) with zeros / False up to S."""
    if x.shape[1] == S:
        return x
    pad = [(0, 0)] * x.ndim
    pad[1] = (0, S - x.shape[1])
    return np.pad(x, pad)
