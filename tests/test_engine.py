"""The engine: continuous batching (and the benchmark's baselines, on the same engine) gives exactly what
one-by-one decoding gives."""
from __future__ import annotations

import asyncio
import random

import pytest

from bench.baselines import engine as make_engine
from service.engine_client import LocalEngine
from test_translator import SENTENCES


def run_concurrently(translator, texts, **engine_kw):
    async def main():
        engine = make_engine(translator, **engine_kw)
        engine.start()
        try:
            return await asyncio.gather(*(engine.submit([t]) for t in texts))
        finally:
            await engine.stop()
    return [r[0].text for r in asyncio.run(main())]


@pytest.mark.parametrize("kw", [dict(max_batch=64), dict(max_batch=16, mode="static", batch_wait_ms=2),
                                dict(max_batch=1)])
def test_200_concurrent_sentences_equal_sequential_decoding(translator, kw):
    texts = [random.Random(i).choice(SENTENCES) + ("" if i % 3 else " Thank you.") for i in range(200)]
    sequential = {t: translator.translate_batch([t])[0].text for t in set(texts)}
    assert run_concurrently(translator, texts, **kw) == [sequential[t] for t in texts]


def test_mixed_beams_and_multi_sentence_requests(translator):
    async def main():
        engine = LocalEngine(translator, max_batch=12)
        engine.start()
        try:
            return await asyncio.gather(engine.submit(SENTENCES[:5], beam_size=3, num_hypotheses=2),
                                        engine.submit(["", SENTENCES[5]]), engine.submit(SENTENCES[6:], beam_size=2))
        finally:
            await engine.stop()
    a, b, c = asyncio.run(main())
    assert [r.text for r in a] == [r.text for r in translator.translate_batch(SENTENCES[:5], beam_size=3)]
    assert all(len(r.hypotheses) == 2 for r in a)
    assert b[0].text == "" and b[1].text == translator.translate_batch([SENTENCES[5]])[0].text
    assert [r.text for r in c] == [r.text for r in translator.translate_batch(SENTENCES[6:], beam_size=2)]


def test_the_batch_never_holds_more_than_max_batch_rows(translator):
    """The encoder may run ahead of the free rows (Scheduler.lookahead), so one encoded group can be larger than
    the batch; only the sentences that fit may join it."""
    rows, step = [], translator.runtime.step

    def spy(y, *rest):
        rows.append(len(y))
        return step(y, *rest)
    translator.runtime.step = spy
    try:
        texts = [SENTENCES[i % len(SENTENCES)] for i in range(30)]
        sequential = {t: translator.translate_batch([t])[0].text for t in set(texts)}
        rows.clear()
        assert run_concurrently(translator, texts, max_batch=8) == [sequential[t] for t in texts]
    finally:
        translator.runtime.step = step
    assert rows and max(rows) <= 8, max(rows)
