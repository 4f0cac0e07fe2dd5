"""The synchronous core: greedy/beam search, batching, attention, GRU end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export import onnx_export
from service.errors import InvalidInput
from service.translator import Sequence, Translator

SENTENCES = ["How are you?", "I see a cat.", "We have the book too.", "Where is the station?", "Thank you.",
             "They like a dog.", "You have the car too.", "It's raining.", "Help me!", "I don't know."]


def test_greedy_equals_torch_reference_and_beam_one(run_dir, model_dir):
    translator = Translator(model_dir, provider="cpu", guards=False)   # the model's own search, as PyTorch's
    model, _ = onnx_export.load_checkpoint(run_dir)
    for s in SENTENCES:
        ids = translator.encode_source(s)
        ref = model.greedy(torch.tensor([ids]), max_len=translator.max_length_for(len(ids)))[0]
        ours = translator.translate_batch([s], beam_size=1)[0].hypotheses[0]
        assert ours.tokens == [translator.sp_tgt.id_to_piece(x) for x in ref]


@pytest.mark.parametrize("beam", [1, 3])
def test_batch_decoding_equals_one_by_one(translator, beam):
    """Bit for bit, not merely close: the batch's source axis comes in whole blocks (translator.SOURCE_BLOCK),
    so a sentence's scores do not depend on the longest sentence it is batched with; a last-bit difference
    there could tip a near tie between two words and change a translation under load."""
    batch = translator.translate_batch(SENTENCES, beam_size=beam, num_hypotheses=beam, return_attention=True)
    for s, r in zip(SENTENCES, batch):
        single = translator.translate_batch([s], beam_size=beam, num_hypotheses=beam, return_attention=True)[0]
        assert [h.text for h in r.hypotheses] == [h.text for h in single.hypotheses]
        assert [h.score for h in r.hypotheses] == [h.score for h in single.hypotheses]
        assert [h.attention for h in r.hypotheses] == [h.attention for h in single.hypotheses]


def test_beam_search_nbest_is_sorted_and_learned(translator):
    r = translator.translate_batch(["I see a cat."], beam_size=4, num_hypotheses=3)[0]
    assert len(r.hypotheses) == 3 and len({h.text for h in r.hypotheses}) == 3
    scores = [h.score for h in r.hypotheses]
    assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)
    assert r.text == "Ja widzę kota."          # the tiny model learned its corpus


def test_output_length_is_bounded_by_the_input(translator):
    r = translator.translate_batch(["cat"] * 1, max_decoding_length=3)[0]
    assert len(r.hypotheses[0].tokens) <= 3
    assert translator.max_length_for(4) == 18


def test_attention_rows_are_distributions(translator):
    r = translator.translate_batch(["We have the book too."], beam_size=2, return_attention=True)[0]
    h = r.hypotheses[0]
    w = np.array(h.attention)
    assert w.shape == (len(h.tokens) + 1, len(r.source_tokens)) and r.source_tokens[-1] == "</s>"
    assert np.allclose(w.sum(1), 1.0, atol=1e-4)


def test_empty_and_invalid_requests(translator):
    res = translator.translate_batch(["", "  ", "Thank you."])
    assert [r.text for r in res[:2]] == ["", ""] and res[2].text
    with pytest.raises(InvalidInput):
        translator.translate_batch(["x"], beam_size=0)
    with pytest.raises(InvalidInput):
        translator.translate_batch(["x"], beam_size=2, num_hypotheses=3)
    with pytest.raises(InvalidInput, match="exceeds the limit"):
        translator.translate_batch(["cat " * 400])


def test_gru_model_end_to_end(gru_model_dir):
    tr = Translator(gru_model_dir, provider="cpu", intra_threads=1)
    assert tr.info.raw["architecture"]["cell"] == "gru" and tr.info.state_shape[1] == 1
    res = tr.translate_batch(SENTENCES[:4], beam_size=2)
    assert all(r.text for r in res)


def test_sequences_joining_a_running_batch_decode_as_if_alone(translator):
    """The basis of continuous batching: rows are appended and dropped between steps."""
    from service.translator import DecodeBatch, Sequence

    def seq(s, beam):
        ids = translator.encode_source(s)
        return Sequence(ids, beam, beam, True, 1.0, translator.max_length_for(len(ids)), tag=(s, beam))

    batch, done, waiting = DecodeBatch(translator), [], [seq(s, 1 + i % 3) for i, s in enumerate(SENTENCES)]
    while waiting or batch.rows:
        if waiting:
            batch.add(waiting[:3])
            waiting = waiting[3:]
        done += batch.step()
    assert len(done) == len(SENTENCES)
    for q in done:
        s, beam = q.tag
        alone = translator.translate_batch([s], beam_size=beam, num_hypotheses=beam, return_attention=True)[0]
        assert [h.text for h in q.result.hypotheses] == [h.text for h in alone.hypotheses]
        assert [h.score for h in q.result.hypotheses] == [h.score for h in alone.hypotheses]
        assert q.result.hypotheses[0].attention == alone.hypotheses[0].attention


def test_static_batch_keeps_finished_rows_until_it_drains(translator):
    from service.translator import DecodeBatch, Sequence

    seqs = [Sequence(translator.encode_source(s), max_len=30, tag=s) for s in ["Yes.", "We have the book too."]]
    batch, rows, done = DecodeBatch(translator, drop_finished=False), [], []
    batch.add(seqs)
    while batch.rows:
        rows.append(batch.rows)
        done += batch.step()
    assert set(rows) == {2} and len(done) == 2                  # idle rows ride along: the waste it measures
    assert [q.result.text for q in seqs] == [r.text for r in translator.translate_batch([q.tag for q in seqs])]


def test_dropping_a_sequence_mid_decode_leaves_the_others_intact(translator):
    from service.translator import DecodeBatch, Sequence

    texts = ["We have the book too.", "They like the tea too.", "Thank you."]
    seqs = [Sequence(translator.encode_source(s), k, k, False, 1.0, 30, tag=s) for s, k in zip(texts, (2, 1, 3))]
    batch = DecodeBatch(translator)
    batch.add(seqs)
    batch.step()
    batch.keep([seqs[0], seqs[2]])                    # the second one's client went away
    assert batch.rows == 5 and batch.enc.shape[0] == 5
    while batch.rows:
        batch.step()
    assert seqs[1].result is None
    for q in (seqs[0], seqs[2]):
        assert q.result.text == translator.translate_batch([q.tag], beam_size=q.k)[0].text


def test_leaving_rows_are_refilled_from_the_end_and_nothing_else_moves(translator):
    """A sequence that leaves frees its rows to the last sequence of the same beam width; the others keep their
    rows (so a retirement copies only the rows it frees), and every sequence still decodes as if alone."""
    from service.translator import DecodeBatch, Sequence

    texts = ["I see a cat.", "Thank you.", "We have the book too.", "They like the tea too.", "Where is it?"]
    ks = (1, 1, 2, 1, 1)
    seqs = [Sequence(translator.encode_source(s), k, 1, False, 1.0, 30, tag=s) for s, k in zip(texts, ks)]
    batch = DecodeBatch(translator)
    batch.add(seqs)
    a, b, c, d, e = seqs
    assert batch._layout([a, c, d, e]) == [a, e, c, d]        # e moves into b's row
    assert batch._layout([a, b, d, e]) == [a, b, d, e]        # c's 2 rows cannot take a 1-row sequence: in order
    assert batch._layout([b, c, d]) == [d, b, c]              # e leaves from the end; d fills a's row
    enc = batch.enc.copy()
    batch.keep([a, c, d, e])
    assert batch.seqs == [a, e, c, d] and batch.rows == 5
    assert np.array_equal(batch.enc, enc[[0, 5, 2, 3, 4]][:, :batch.enc.shape[1]])
    while batch.rows:
        batch.step()
    for q in (a, c, d, e):
        assert q.result.text == translator.translate_batch([q.tag], beam_size=q.k)[0].text


def test_an_encoded_group_split_in_two_decodes_as_if_alone(translator):
    """The engine admits the leading sentences of an encoded group that fit and keeps the rest for later."""
    from service.translator import DecodeBatch, Sequence

    texts = ["I see a cat.", "We have the book too.", "Thank you."]
    seqs = [Sequence(translator.encode_source(s), k, 1, False, 1.0, 30, tag=s) for s, k in zip(texts, (1, 2, 1))]
    batch = DecodeBatch(translator)
    head, tail = batch.split_encoded(batch.encode(seqs), 2)
    assert len(head[1]) == 3 and list(tail[1]) == [0]          # rows: 1 + 2 for the head, 1 for the tail
    batch.add(seqs[:2], head)
    batch.step()
    batch.add(seqs[2:], tail)
    while batch.rows:
        batch.step()
    for q in seqs:
        assert q.result.text == translator.translate_batch([q.tag], beam_size=q.k)[0].text


def test_repetition_guard_counts_overlapping_and_separate_ngrams():
    from service.translator import _banned, _repeats
    assert not _repeats([5, 5, 5, 5], 5)            # 'aaaa' once so far: a second copy is allowed
    assert _repeats([5, 5, 5, 5, 5], 5)             # 'aaaa' twice (overlapping): a third is blocked
    loop = [1, 2, 3, 4, 9, 1, 2, 3, 4, 9, 1, 2, 3]
    assert _repeats(loop, 4) and not _repeats(loop, 7)
    assert not _repeats([1, 2, 3, 4, 1, 2, 3], 4)   # a second copy of 1 2 3 4 is fine
    for toks in ([5, 5, 5, 5, 5], loop, [1, 2, 3, 4, 1, 2, 3], [7, 8, 9, 1, 2, 3, 4, 1, 2, 3, 5, 1, 2, 3]):
        assert _banned(toks) == [t for t in range(10) if _repeats(toks, t)]


def test_placeholder_models_get_protected_spans_back(model_dir):
    """A model trained with placeholders (model.json "placeholders": true) sees ⟦i⟧ instead of numbers, URLs and
    e-mails, and every span comes back in the output, whether the model placed its placeholder or not."""
    tr = Translator(model_dir, provider="cpu")
    assert tr.rare is None                                      # the fixture model has no placeholders
    tr.rare = lambda word: False                                # as a placeholder model is loaded: numbers etc.
    ids, spans = tr.encode_protected("I see 42 cats at https://example.org now.")
    assert spans == ["42", "https://example.org"]
    for beam in (1, 3):
        out = tr.translate_batch(["I see 42 cats at https://example.org now.", "I see 7 dogs."], beam_size=beam)
        assert "42" in out[0].text and "https://example.org" in out[0].text and "7" in out[1].text
        assert not any("⟦" in r.text for r in out)


@pytest.mark.parametrize("beam", [1, 3])
def test_guards_hold_length_and_block_loops(model_dir, monkeypatch, beam):
    """Forced to write far longer than it wants (minimum 3x the source), the tiny model would loop; the
    repetition block keeps every token 4-gram to at most two copies, in greedy and beam search alike."""
    from collections import Counter

    import service.translator as T

    monkeypatch.setattr(T, "MIN_LENGTH_RATIO", 3.0)
    monkeypatch.setattr(T, "MAX_LENGTH_RATIO", 4.0)
    tr = Translator(model_dir, provider="cpu")
    for r, s in zip(tr.translate_batch(SENTENCES, beam_size=beam), SENTENCES):
        n = len(tr.encode_source(s))
        ids = [tr.sp_tgt.piece_to_id(p) for p in r.hypotheses[0].tokens]
        assert len(ids) >= min(3 * (n - 1), tr.max_length_for(n) - 1)
        assert max(Counter(tuple(ids[i:i + 4]) for i in range(len(ids) - 3)).values()) <= 2
    plain = Translator(model_dir, provider="cpu", guards=False).translate_batch(SENTENCES, beam_size=beam)
    assert any(len(p.hypotheses[0].tokens) < 3 * (len(tr.encode_source(s)) - 1) for p, s in zip(plain, SENTENCES))


def test_placeholders_only_the_sources_slots_each_once():
    """A model trained with placeholders may only produce the slots its source has, each once per hypothesis
    (a slot the source lacks would restore to nothing, leaving " ." behind)."""
    slots = [100 + i for i in range(10)]
    q = Sequence([5, 2], spans=["42", "Vidal"], slots=slots)
    assert q.refused([7], 102) and q.refused([7], 109)          # not in the source
    assert not q.refused([7], 100) and not q.refused([7], 101)
    assert q.refused([7, 100], 100) and not q.refused([7, 100], 101)   # each slot once
    assert q.refusals([7, 100]) == [100] and sorted(q.closed_ids.tolist()) == slots[2:]   # beam rows mask these
    plain = Sequence([5, 2], spans=["42"], slots=slots, block=False)  # guards off: the model's own search
    assert not plain.refused([100], 100) and plain.refusals([100]) == []


@pytest.mark.parametrize("beam", [1, 3])
def test_closed_tokens_never_appear_greedy_or_beam(translator, beam):
    """Tokens a sentence may not produce (Translator.closed_for: placeholder brackets, invented digits) are
    masked in the real decoding loop: here the very tokens the model writes for these sentences."""
    from service.translator import DecodeBatch

    texts = ["We have the book too.", "They like the tea too.", "Thank you."]
    free = translator.translate_batch(texts, beam_size=beam)
    for s, r in zip(texts, free):
        wanted = [translator.sp_tgt.piece_to_id(p) for p in r.hypotheses[0].tokens][:2]
        q = Sequence(translator.encode_source(s), beam, 1, False, 1.0, 30, closed=wanted)
        batch = DecodeBatch(translator)
        batch.add([q])
        while batch.rows:
            batch.step()
        got = [translator.sp_tgt.piece_to_id(p) for p in q.result.hypotheses[0].tokens]
        assert got and not set(wanted) & set(got)
        off = Sequence(translator.encode_source(s), beam, 1, False, 1.0, 30, closed=wanted, block=False)
        assert off.closed_ids is None                      # guards off: nothing closed


def test_digit_and_bracket_pieces_of_a_placeholder_model(tmp_path, model_dir):
    """The ban lists behind closed_for, read from a tokenizer trained as the export trains them (byte fallback,
    the placeholder symbols): digit pieces, ASCII digit bytes included, never a placeholder symbol nor a byte
    that is part of a letter; a source that still holds a digit lifts the digit ban; a model without
    placeholders closes nothing."""
    from types import SimpleNamespace

    import sentencepiece as spm

    from service.placeholders import SYMBOLS
    from service.translator import _pieces

    lines = [f"Mam {n} kotów i {n * 7} psów, {n}0 złotych." for n in range(300)] + ["Łódź ⟦ ⟧ żółw"] * 50
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(tmp_path / "c.txt"), model_prefix=str(tmp_path / "t"), vocab_size=400,
                                   byte_fallback=True, user_defined_symbols=SYMBOLS, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "t.model"))
    slots = [sp.piece_to_id(p) for p in SYMBOLS]
    digits = _pieces(sp, lambda t: any(c.isdigit() for c in t), slots)
    texts = {sp.id_to_piece(i) for i in digits}
    assert {f"<0x{0x30 + d:02X}>" for d in range(10)} <= texts                 # the digit bytes
    assert not texts & {*SYMBOLS, "<0xB2>", "<0xC5>", "<0x82>"}                # not slots, not parts of "ł"
    assert all(any(c.isdigit() for c in sp.decode([i])) for i in digits)
    assert any(not sp.is_byte(i) for i in digits)                              # and learned pieces like "7"
    brackets = _pieces(sp, lambda t: "⟦" in t or "⟧" in t, slots)
    assert brackets and all(sp.decode([i]).strip("▁ ") in ("⟦", "⟧") for i in brackets)

    tr = SimpleNamespace(slot_ids=slots, bracket_ids=brackets, digit_ids=digits,
                         source_digit_ids=frozenset(_pieces(sp, lambda t: any(c.isdigit() for c in t), slots)))
    assert Translator.closed_for(tr, sp.encode("Mam ⟦0⟧ kotów.")) == brackets + digits   # slots are not digits
    assert Translator.closed_for(tr, sp.encode("Mam 3 koty.")) == brackets
    assert Translator(model_dir, provider="cpu").closed_for([5, 6, 2]) == []   # no placeholders: nothing
