"""I/O binding (TRANSLATOR_IO_BINDING): the bound path decodes exactly what the plain path decodes.

Three ways to run the same decoding, compared for equality (texts, scores, attention, bit for bit):
  off    numpy arrays, `session.run` (the CPU default)
  numpy  I/O binding, OrtValues, rows moved with numpy on views of the CPU OrtValues
  graph  I/O binding, rows moved by service/rowgraphs.py's ONNX graphs (what CUDA runs), here on CPU
"""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from conftest import SHIPPED_MODEL
from service import rowgraphs
from service import metrics
from service.engine import Engine
from service.engine_client import LocalEngine
from service.messages import Cancel, Submit
from service.errors import ModelLoadError
from service.runtime import BoundRows, HostRows
from service.settings import Settings
from service.translator import DecodeBatch, Sequence, Translator
from test_translator import SENTENCES

MODES = ("off", "numpy", "graph")


def make(model_dir, mode: str) -> Translator:
    tr = Translator(model_dir, provider="cpu", intra_threads=1, io_binding="off" if mode == "off" else "on")
    if mode == "graph":
        tr.runtime.gather = "graph"
    return tr


@pytest.fixture(scope="module")
def tiny(model_dir):
    return {m: make(model_dir, m) for m in MODES}


@pytest.fixture(scope="module")
def shipped():
    return {m: make(SHIPPED_MODEL, m) for m in MODES}


def flat(results):
    """Everything a result says, for exact comparison."""
    return [(r.source_tokens, [(h.text, h.score, h.tokens, h.attention) for h in r.hypotheses]) for r in results]


def test_modes_use_the_store_they_say(tiny):
    assert isinstance(tiny["off"].runtime.rows(), HostRows)
    assert isinstance(tiny["numpy"].runtime.rows(), BoundRows) and tiny["numpy"].runtime.gather == "numpy"
    assert tiny["graph"].runtime.rows()._graph
    assert tiny["off"].runtime.device == "cpu" and not tiny["off"].runtime.io_binding


def test_auto_is_off_on_cpu_and_bad_values_are_refused(model_dir):
    assert not Translator(model_dir, provider="cpu", io_binding="auto").runtime.io_binding
    with pytest.raises(ModelLoadError, match="io_binding"):
        Translator(model_dir, provider="cpu", io_binding="sometimes")
    assert Settings.from_env({"TRANSLATOR_IO_BINDING": "on"}).io_binding == "on"
    with pytest.raises(ValueError, match="io_binding"):
        Settings(io_binding="yes")


def test_committed_graphs_are_what_rowgraphs_builds():
    """service/graphs/*.onnx are built by `python -m service.rowgraphs` (the service itself needs no onnx)."""
    assert rowgraphs.build() == rowgraphs.load()


@pytest.mark.parametrize("beam,nbest", [(1, 1), (3, 3)])
def test_tiny_model_same_results_every_mode(tiny, beam, nbest):
    texts = SENTENCES + ["I see a cat too.", "", "We like the tea."]
    want = flat(tiny["off"].translate_batch(texts, beam_size=beam, num_hypotheses=nbest, return_attention=True))
    for mode in ("numpy", "graph"):
        got = tiny[mode].translate_batch(texts, beam_size=beam, num_hypotheses=nbest, return_attention=True)
        assert flat(got) == want, mode


@pytest.mark.parametrize("beam,nbest", [(1, 1), (3, 2)])
def test_shipped_model_same_results_every_mode(shipped, beam, nbest):
    texts = [ln.split("\t")[0] for ln in (SHIPPED_MODEL / "test.tsv").read_text().splitlines()[:40]]
    want = flat(shipped["off"].translate_batch(texts, beam_size=beam, num_hypotheses=nbest, return_attention=True))
    for mode in ("numpy", "graph"):
        got = shipped[mode].translate_batch(texts, beam_size=beam, num_hypotheses=nbest, return_attention=True)
        assert flat(got) == want, mode


def scripted(tr: Translator, texts: list[str], static: bool = False):
    """A DecodeBatch driven by a fixed schedule: sentences join between steps (different beams, longer and
    shorter sources than the batch's), one is dropped mid-decode; -> results and host tensors after step 3."""
    seqs = [Sequence(tr.encode_source(t), k, k, i % 2 == 0, 1.0, 40, tag=i)
            for i, (t, k) in enumerate(zip(texts, [1, 3, 2, 1, 1, 3, 1, 2, 1, 1]))]
    batch = DecodeBatch(tr, drop_finished=not static)
    batch.add(seqs[:2])
    for t in range(60):
        if t in (1, 2, 4):                                  # joins while the batch runs
            batch.add(seqs[2 + 2 * (t // 2): 4 + 2 * (t // 2)] if t != 4 else seqs[6:10])
        if t == 3:
            snapshot = [x.copy() for x in batch.tensors.host()]
            batch.keep([q for q in batch.seqs if q.tag != 3])   # a client went away
        if not batch.rows:
            break
        batch.step()
    return [(q.tag, flat([q.result]) if q.result else None) for q in seqs], snapshot


@pytest.mark.parametrize("static", [False, True])
def test_joins_and_drops_same_results_every_mode(tiny, shipped, static):
    for trs, texts in ((tiny, SENTENCES), (shipped, ["The weather was terrible yesterday, so we stayed home.",
                                                     "Thanks!", "I don't think that's what he meant.",
                                                     "Where is the nearest train station?", "Go.",
                                                     "She has been reading this book for three weeks now.",
                                                     "Tom is here.", "Can you help me carry these boxes upstairs?",
                                                     "No.", "We should leave before it gets dark."])):
        want, want_t = scripted(trs["off"], texts, static)
        assert want[3][1] is None and all(r for i, r in want if i != 3)
        for mode in ("numpy", "graph"):
            got, got_t = scripted(trs[mode], texts, static)
            assert got == want, mode
            assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(got_t, want_t)), mode


def engine_run(tr: Translator) -> list:
    """The Engine's own admission and retirement, its two workers' iterations (encode_next, decode_next) played in
    this thread so the schedule is the same every run: requests arrive while others decode, one is cancelled
    mid-decode."""
    reports = []
    engine = Engine(tr, reports.append, metrics.ENGINE, max_batch=8)
    arrivals = {0: [(SENTENCES[:3], 1)], 1: [(SENTENCES[3:4], 3)], 2: [(SENTENCES[4:7], 1)],
                4: [(SENTENCES[7:8], 2), (["I see a cat.", "Thank you."], 1)], 6: [(SENTENCES[8:], 3)]}
    sent = 0
    for step in range(80):
        for texts, beam in arrivals.get(step, []):
            engine.handle(Submit(sent, texts, beam, beam, beam == 2))
            sent += 1
        if step == 5:
            engine.handle(Cancel(1))                    # the beam-3 request's client went away
        engine.encode_next()
        engine.decode_next()
        answers = {a.id: a for r in reports for a in r.answers}
        if step > 6 and len(answers) == sent - 1:
            break
    engine.decode_next()                                # the last step's report
    answers = {a.id: a for r in reports for a in r.answers}
    assert 1 not in answers and len(answers) == sent - 1 and not any(a.error for a in answers.values())
    assert sum(r.left for r in reports) == sum(len(t) for ts in arrivals.values() for t, _ in ts)
    return [flat(answers[i].results) if i in answers else None for i in range(sent)]


def test_engine_mixed_requests_same_results_every_mode(tiny):
    want = engine_run(tiny["off"])
    assert want[1] is None and all(want[i] for i in (0, 2, 3, 4, 5))
    for mode in ("numpy", "graph"):
        assert engine_run(tiny[mode]) == want, mode


@pytest.mark.parametrize("mode", ["numpy", "graph"])
def test_engine_worker_thread_with_binding_equals_sequential(tiny, mode):
    tr = tiny[mode]
    texts = [SENTENCES[i % len(SENTENCES)] + ("" if i % 3 else " Thank you.") for i in range(60)]
    sequential = {t: tiny["off"].translate_batch([t])[0].text for t in set(texts)}

    async def main():
        engine = LocalEngine(tr, max_batch=16)
        engine.start()
        try:
            return await asyncio.gather(*(engine.submit([t]) for t in texts))
        finally:
            await engine.stop()
    assert [r[0].text for r in asyncio.run(main())] == [sequential[t] for t in texts]
