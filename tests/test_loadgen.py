"""bench.loadgen, the benchmark's HTTP load generator: each client sends its own sequence of sentences."""
from __future__ import annotations

import asyncio

from bench import loadgen

SENTENCES = ["I see a cat.", "Thank you.", "Where is the station?", "We have the book too.", "Hi.", "Tom is here."]


def test_each_client_starts_somewhere_else():
    firsts = [next(loadgen.order(c, len(SENTENCES))) for c in range(4)]
    assert len(set(firsts)) == 4


def test_clients_send_different_sentences_to_a_real_server(start_server, model_dir):
    srv = start_server(model_dir)
    res = asyncio.run(loadgen.main(srv.url + "/translate", SENTENCES, 4, 1.0))
    assert res["requests"] and all(status == 200 for _, _, status, _ in res["requests"])
    first = {}
    for i, _, _, c in res["requests"]:
        first.setdefault(c, i)
    assert len(first) == 4 and len(set(first.values())) == 4   # not the same sentence 4 times
