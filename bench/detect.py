"""`python -m bench.detect`: what language detection costs (service/detect.py), written to
docs/benchmarks/detect.md and detect.json.

1. The detector alone, in this process: loading it, and what `source: "auto"` adds to a request (the rule, then
   English's confidence for `detectedLanguage`) per text: the English sentences of the shipped test split, and
   texts at the 1,000-character limit.
2. Through HTTP, one client, the shipped model: POST /translate with `source: "en"` and with `source: "auto"`
   alternating request by request on the same sentences (so the machine's drift cancels out), and POST /detect.
"""
from __future__ import annotations

import datetime
import http.client
import json
import statistics
import sys
import time

from bench.run import REPO, start_server

MODEL = REPO / "models" / "eng-pol"
OUT = REPO / "docs" / "benchmarks"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def timed(f, items) -> list[float]:
    out = []
    for x in items:
        t0 = time.perf_counter()
        f(x)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def in_process(english: list[str]) -> dict:
    from service.detect import Detector

    rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20  # noqa: E731  MiB
    before, t0 = rss(), time.perf_counter()
    d = Detector()
    load_s, load_mib = time.perf_counter() - t0, rss() - before
    auto = d.judge                                                 # what source "auto" runs per text
    long = [" ".join(english[i:i + 40])[:1000] for i in range(0, 40 * 50, 40)]
    timed(auto, english[:200])                                      # warm-up
    short_ms, long_ms = timed(auto, english), timed(auto, long)
    detect_ms = timed(d.detect, english)
    return {"load_s": load_s, "load_rss_mib": load_mib, "sentences": len(english), "mean_chars": statistics.mean(map(len, english)),
            "auto_short_p50_ms": pct(short_ms, 0.5), "auto_short_p99_ms": pct(short_ms, 0.99),
            "auto_1000_chars_p50_ms": pct(long_ms, 0.5), "auto_1000_chars_p99_ms": pct(long_ms, 0.99),
            "detect_short_p50_ms": pct(detect_ms, 0.5),
            "auto_max_request_ms": 64 * pct(long_ms, 0.5)}


def over_http(english: list[str], rounds: int) -> dict:
    proc, url = start_server(MODEL, {"TRANSLATOR_INTRA_THREADS": "1"})
    try:
        conn = http.client.HTTPConnection(url.removeprefix("http://"))

        def post(path: str, body: dict) -> float:
            data = json.dumps(body).encode()
            t0 = time.perf_counter()
            conn.request("POST", path, data, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status == 200, r.status
            return (time.perf_counter() - t0) * 1000

        for s in english[:50]:                                   # warm-up
            post("/translate", {"q": s, "source": "auto", "beam_size": 1})
        en, auto, detect = [], [], []
        for _ in range(rounds):
            for s in english:
                en.append(post("/translate", {"q": s, "source": "en", "beam_size": 1}))
                auto.append(post("/translate", {"q": s, "source": "auto", "beam_size": 1}))
                detect.append(post("/detect", {"q": s}))
        diffs = [a - e for a, e in zip(auto, en)]
        return {"requests_each": len(en), "en_p50_ms": pct(en, 0.5), "en_p99_ms": pct(en, 0.99),
                "auto_p50_ms": pct(auto, 0.5), "auto_p99_ms": pct(auto, 0.99),
                "auto_minus_en_median_ms": statistics.median(diffs), "detect_p50_ms": pct(detect, 0.5),
                "detect_p99_ms": pct(detect, 0.99)}
    finally:
        proc.terminate()
        proc.wait()


def main() -> int:
    pairs = [line.rstrip("\n").split("\t") for line in (MODEL / "test.tsv").open(encoding="utf-8")]
    english = [en for en, _ in pairs]
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    local = in_process(english)
    http_ = over_http(english[:300], rounds=2)
    result = {"date": started, "command": "python -m bench.detect", "in_process": local, "http": http_}
    (OUT / "detect.json").write_text(json.dumps(result, indent=1) + "\n")
    L, H = local, http_
    (OUT / "detect.md").write_text(f"""# Language detection: what it costs

{started}, `.venv/bin/python -m bench.detect` (the training paused), 2-core AMD EPYC,
py3langid {_version()}, shipped model 1.1.0-int8, greedy, the engine in its own process. Raw figures: detect.json.

**In process** (service/detect.py; what `source: "auto"` runs per text: the rule, then English's confidence):

| | p50 | p99 |
|---|---|---|
| the English sentences of the test split ({L['sentences']}, {L['mean_chars']:.0f} characters on average) | {L['auto_short_p50_ms']:.3f} ms | {L['auto_short_p99_ms']:.3f} ms |
| texts of 1,000 characters (the limit) | {L['auto_1000_chars_p50_ms']:.2f} ms | {L['auto_1000_chars_p99_ms']:.2f} ms |
| `/detect`'s ranking, test-split sentences | {L['detect_short_p50_ms']:.3f} ms | |

Loading the detector (once per server process, at start-up, off the event loop): {L['load_s']:.2f} s, and the
process's resident memory grows by {L['load_rss_mib']:.0f} MiB (the model's byte-n-gram automaton and its
100,053 x 142 weight matrix; each worker of `--workers N` holds its own). The largest request
(64 texts of 1,000 characters) spends about {L['auto_max_request_ms']:.0f} ms detecting; a request of more than
2,000 characters is detected in a worker thread, so that it does not hold the event loop that long.

**Through HTTP**, one client, {H['requests_each']} requests each, `source: "en"` and `source: "auto"` alternating
on the same sentences (the test split's first 300, twice):

| | p50 | p99 |
|---|---|---|
| POST /translate, `source: "en"` | {H['en_p50_ms']:.2f} ms | {H['en_p99_ms']:.2f} ms |
| POST /translate, `source: "auto"` | {H['auto_p50_ms']:.2f} ms | {H['auto_p99_ms']:.2f} ms |
| POST /detect | {H['detect_p50_ms']:.2f} ms | {H['detect_p99_ms']:.2f} ms |

Median of the paired differences (auto minus en): **{H['auto_minus_en_median_ms']:+.3f} ms** a request.
""")
    print(json.dumps(result, indent=1))
    return 0


def _version() -> str:
    from importlib.metadata import version
    return version("py3langid")


if __name__ == "__main__":
    sys.exit(main())
