"""Property tests (hypothesis) of the tokenizer and the decoder on the tiny model: arbitrary Unicode, from every
category (lone surrogates, controls, format characters, unassigned code points, right-to-left scripts, emoji),
never breaks them. The only errors allowed are the documented InvalidInput and PayloadTooLarge."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import InvalidInput, PayloadTooLarge

ANY_CHAR = st.characters()                                   # every category, Cs (lone surrogates) included
TEXT_CHAR = st.characters(exclude_categories=["Cs"])         # what JSON can carry: every category but Cs
WORDS = st.sampled_from(["I", "see", "a", "cat", "dog", "Thank", "you", ".", "?", "!", "the", "book", "We",
                         "مرحبا", "שלום", "😀", "\u200b", "\x00", "\x1b", "\ufeff", "\ufdfa"])
# the tiny model's own words mixed with arbitrary characters, so decoding also sees input it half knows
MIXED = st.lists(st.one_of(WORDS, st.text(TEXT_CHAR, max_size=12)), max_size=8).map(" ".join)
TEXTS = st.one_of(st.text(TEXT_CHAR, max_size=40), MIXED)

PROPERTY = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@settings(PROPERTY, max_examples=400)
@given(texts=st.lists(st.one_of(st.text(ANY_CHAR, max_size=40), MIXED), max_size=4))
def test_tokenizer_takes_any_text(translator, texts):
    try:
        results, seqs = translator.sequences(texts, beam_size=2, num_hypotheses=2)
    except InvalidInput as e:
        if isinstance(e, PayloadTooLarge):   # only a text that really has more tokens than the limit
            assert any(len(translator.encode_source(t)) > translator.max_source_tokens
                       for t in texts if not has_surrogate(t)), e
            assert str(translator.max_source_tokens) in str(e)
        else:                                # only a lone surrogate, named in the message
            assert any(has_surrogate(t) for t in texts) and "lone surrogate" in str(e), e
        return
    assert not any(has_surrogate(t) for t in texts)
    assert len(results) == len(texts)
    tagged = {q.tag: q for q in seqs}
    for i, text in enumerate(texts):
        ids = translator.encode_source(text)
        assert text.strip() or not ids, f"a blank text reached the model: {text!r}"
        if not ids:                          # nothing the tokenizer sees: answered "" without the model
            assert i not in tagged and results[i].text == "" and results[i].hypotheses[0].tokens == []
            continue
        q = tagged[i]
        assert results[i] is None and q.src_ids == ids
        assert ids[-1] == translator.info.eos_id and translator.info.eos_id not in ids[:-1]
        assert all(0 <= x < translator.info.src_vocab for x in ids)
        assert len(ids) <= translator.max_source_tokens
        assert q.max_len == translator.max_length_for(len(ids)) and q.k == 2 and q.nbest == 2


@settings(PROPERTY, max_examples=150)
@given(text=TEXTS, beam=st.integers(1, 3), data=st.data())
def test_decoder_takes_any_text(translator, text, beam, data):
    nbest = data.draw(st.integers(1, beam), label="num_hypotheses")
    try:
        (res,) = translator.translate_batch([text], beam_size=beam, num_hypotheses=nbest, return_attention=True)
    except PayloadTooLarge:
        assert len(translator.encode_source(text)) > translator.max_source_tokens
        return
    n_src = len(translator.encode_source(text))
    assert 1 <= len(res.hypotheses) <= nbest
    scores = [h.score for h in res.hypotheses]
    assert scores == sorted(scores, reverse=True) and all(np.isfinite(scores))
    for h in res.hypotheses:
        assert isinstance(h.text, str)
        h.text.encode("utf-8", errors="strict")             # valid UTF-8: no lone surrogates in the output
        assert all(isinstance(p, str) for p in h.tokens)
        if n_src == 0:
            assert h.text == "" and h.tokens == [] and h.attention == []
            continue
        assert len(h.tokens) <= translator.max_length_for(n_src)   # the decode stopped within its limit
        w = np.array(h.attention)
        assert w.shape[1] == n_src == len(res.source_tokens)
        assert w.shape[0] in (len(h.tokens), len(h.tokens) + 1)   # + the step that chose </s>
        assert np.allclose(w.sum(axis=1), 1.0, atol=1e-3) and (w >= 0).all()


@settings(PROPERTY, max_examples=80)
@given(texts=st.lists(TEXTS, min_size=1, max_size=6))
def test_greedy_batch_equals_one_by_one(translator, texts):
    texts = [t for t in texts if len(translator.encode_source(t)) <= translator.max_source_tokens]
    batch = translator.translate_batch(texts, beam_size=1)
    for text, r in zip(texts, batch):
        (alone,) = translator.translate_batch([text], beam_size=1)
        assert r.hypotheses[0].tokens == alone.hypotheses[0].tokens, text
        assert r.text == alone.text
        assert abs(r.hypotheses[0].score - alone.hypotheses[0].score) < 1e-4
