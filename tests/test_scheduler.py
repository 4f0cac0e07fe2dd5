"""The scheduling policy (service/scheduler.py), without threads or a model: sentences are Sequences with a beam
width, the encoder's output is any object that `split` can cut."""
from __future__ import annotations

from types import SimpleNamespace

from bench.baselines import RequestLevelBatching
from service.scheduler import Scheduler
from service.translator import Sequence


def sentences(*beams: int, request=None) -> list[Sequence]:
    req = request or SimpleNamespace(cancelled=False)
    return [Sequence([5, 2], k=k, tag=(req, i)) for i, k in enumerate(beams)]


def split(encoded, j):
    return encoded[:j], encoded[j:]


def encode(s: Scheduler, live_rows: int = 0) -> list[Sequence]:
    """One encoder run as the engine does it: the sentences picked, their 'encoding' the list of their ids."""
    seqs = s.next_encode(live_rows)
    if seqs:
        s.done_encoding(seqs, [id(q) for q in seqs])
    return seqs


def test_the_encoder_takes_what_the_batch_will_have_room_for():
    s = Scheduler(max_batch=8, lookahead=2)
    s.add(sentences(1, 1, 1, 3, 3, 1, 1))
    assert s.pending == 7
    # 6 rows decoding: 8 - 6 + lookahead 2 = 4 rows to fill -> 1 + 1 + 1, and the beam-3 sentence does not fit
    assert [q.k for q in encode(s, live_rows=6)] == [1, 1, 1]
    # 3 rows encoded and waiting to join, none decoding: 8 - 3 + 2 = 7 -> 3 + 3 + 1 (the last 1 waits its turn)
    assert [q.k for q in encode(s, live_rows=0)] == [3, 3, 1]
    assert s.pending == 7 and s.encoded_rows == 10
    # nothing more while the batch and the encoded rows fill it; the last one once rows are free
    assert encode(s, live_rows=8) == [] and [q.k for q in encode(s, live_rows=-10)] == [1]


def test_encoded_sentences_join_while_they_fit_and_a_group_is_split_there():
    s = Scheduler(max_batch=4, lookahead=0)
    s.add(sentences(1, 1, 1, 1, 1, 1))
    seqs = s.next_encode(live_rows=-2)            # the encoder ran ahead of the free rows: one group of 6
    s.done_encoding(seqs, [0, 1, 2, 3, 4, 5])
    groups, wait = s.next_join(live_rows=1, batch_rows=1, split=split)
    assert wait is None and [(len(q), enc) for q, enc in groups] == [(3, [0, 1, 2])]    # 1 decoding + 3 = 4
    assert s.pending == 3 and s.encoded_rows == 3
    groups, _ = s.next_join(live_rows=4, batch_rows=4, split=split)
    assert groups == []                           # full
    groups, _ = s.next_join(live_rows=0, batch_rows=0, split=split)
    assert [enc for _, enc in groups] == [[3, 4, 5]] and s.pending == 0 and s.idle


def test_a_sentence_wider_than_the_batch_is_decoded_alone():
    """(Before issue 13 the lookahead kept such a sentence waiting forever: a request with beam_size above
    max_batch + max_batch // 4 timed out.)"""
    s = Scheduler(max_batch=4)
    s.add(sentences(6, 1))                        # beam 6 > max_batch: it still gets decoded, alone
    assert [q.k for q in encode(s)] == [6]
    groups, _ = s.next_join(live_rows=0, batch_rows=0, split=split)
    assert [len(q) for q, _ in groups] == [1]
    assert encode(s, live_rows=6) == []           # the next one waits while the wide one decodes
    assert [q.k for q in encode(s, live_rows=0)] == [1]


def test_cancelled_requests_leave_the_queue():
    gone = SimpleNamespace(cancelled=False)
    s = Scheduler(max_batch=8)
    s.add(sentences(1, 1, request=gone) + sentences(1))
    gone.cancelled = True
    s.drop_cancelled()
    assert s.pending == 1 and len(s.waiting) == 1
    s.add(sentences(1, request=gone))
    assert len(encode(s)) == 1 and s.pending == 1    # the encoder skips what was cancelled meanwhile


def test_a_failed_encoder_run_leaves_the_queue():
    s = Scheduler(max_batch=8)
    s.add(sentences(1, 1))
    seqs = s.next_encode(0)
    s.done_encoding(seqs, None)
    assert s.pending == 0 and s.idle


def test_request_level_batching_takes_a_new_batch_only_when_the_last_has_drained():
    s = RequestLevelBatching(max_batch=4, wait_ms=5)
    s.add(sentences(1, 1, 1))
    assert len(encode(s, live_rows=4)) == 3       # the next batch is encoded while the current one decodes
    assert s.next_join(live_rows=2, batch_rows=4, split=split)[0] == []
    s.add(sentences(1))                           # more coming: an empty engine waits (up to 5 ms) for them
    groups, wait = s.next_join(live_rows=0, batch_rows=0, split=split, now=0.001)
    assert groups == [] and 0 < wait <= 0.005
    assert len(encode(s)) == 1
    groups, wait = s.next_join(live_rows=0, batch_rows=0, split=split, now=0.002)
    assert sum(len(q) for q, _ in groups) == 4 and wait is None
    done = sentences(1, 1)
    assert s.release(done[:1], batch_rows=4) == [] and s.release(done[1:], batch_rows=0) == done
