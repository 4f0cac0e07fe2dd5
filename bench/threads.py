"""`python -m bench.threads`: the intra-op thread default, measured through HTTP (continuous batching, shipped
model, greedy) at 1 and 32 clients with 1 and 2 onnxruntime threads, alternating, twice; prints one line a run.
Figures from a run are in docs/benchmarks/README.md ("Thread setting")."""
from __future__ import annotations

import json

from bench.run import REPO, run_http, start_server

MODEL = REPO / "models" / "eng-pol"
SENTENCES = REPO / "docs" / "benchmarks" / "sentences.json"


def run(threads: int, clients: int, seconds: float = 8) -> dict:
    """One server process with `threads` intra-op threads, one closed-loop load-generator run against it."""
    sentences = json.loads(SENTENCES.read_text())
    proc, url = start_server(MODEL, {"TRANSLATOR_INTRA_THREADS": str(threads)})
    try:
        return run_http(url, SENTENCES, sentences, {s: len(s.split()) for s in sentences}, clients, seconds)[0]
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    for _ in range(2):
        for threads in (1, 2):
            for clients in (1, 32):
                r = run(threads, clients)
                print(f"intra={threads} c={clients}: {r['sentences_per_s']:.0f}/s p50 {r['p50_ms']:.1f} ms "
                      f"p99 {r['p99_ms']:.1f} ms", flush=True)
