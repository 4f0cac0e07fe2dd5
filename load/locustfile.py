"""Locust load test for the English->Polish service: realistic traffic, every answer checked, SLO gates.

Two kinds of client, weighted like real traffic:
  WebUser      (weight 4) someone translating in a page or chat: one sentence at a time with reading time
               between; now and then greedy, now and then beam 5 with two alternatives, rarely a wrong
               language pair (which must be a 400 with a JSON error, not a 500).
  BatchClient  (weight 1) an app translating short documents: 2-8 sentences per request.
Sentences come from load/sentences.txt (found beside this file; --sentences to change it): held-out
English sentences of varied length, see load/make_sentences.py. Requests are grouped by name in the
statistics ("/translate [single]", "/translate [batch]", ...), not by URL.

SLO gates, checked when the run ends (on the master in a distributed run): failure ratio, p95 latency
over the whole run, and throughput. A missed gate is logged and the exit code is 1; when all pass it is 0
(failures under the allowed ratio then do not fail the run). The thresholds are options:
  --slo-max-failure-ratio (env LOCUST_SLO_MAX_FAILURE_RATIO), --slo-p95-ms, --slo-min-rps;
--slo-report FILE writes the final totals and the outcome as JSON.

    locust -f load/locustfile.py --headless -u 8 -r 2 -t 60s --host http://127.0.0.1:8000
    locust -f load/locustfile.py,load/shape.py --headless --host ...    # the step profile (load/shape.py)
    python load/locustfile.py [--host URL] [WebUser|BatchClient]        # one user, prints every request
"""
from __future__ import annotations

import json
import logging
import random
import sys
from pathlib import Path

from locust import HttpUser, between, events, run_single_user, task
from locust.runners import WorkerRunner

HERE = Path(__file__).resolve().parent
SENTENCES: list[str] = []
log = logging.getLogger("load")


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    g = parser.add_argument_group("translator load test")
    g.add_argument("--sentences", default=str(HERE / "sentences.txt"), env_var="LOCUST_SENTENCES",
                   help="English sentences, one a line (# comments skipped) "
                        "[default: sentences.txt beside the locustfile]")
    g.add_argument("--slo-max-failure-ratio", type=float, default=0.01, env_var="LOCUST_SLO_MAX_FAILURE_RATIO",
                   help="SLO gate: most failed requests / all requests [default: %(default)s]")
    g.add_argument("--slo-p95-ms", type=float, default=1000.0, env_var="LOCUST_SLO_P95_MS",
                   help="SLO gate: largest p95 response time over the whole run, ms [default: %(default)s]")
    g.add_argument("--slo-min-rps", type=float, default=5.0, env_var="LOCUST_SLO_MIN_RPS",
                   help="SLO gate: fewest requests per second over the whole run [default: %(default)s]")
    g.add_argument("--slo-report", default="", env_var="LOCUST_SLO_REPORT",
                   help="write the run's final totals, the thresholds and the gate outcome to this JSON file "
                        "(exact at the end, unlike the CSVs, which Locust writes once a second)")


def read_sentences(path: str | Path) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    sentences = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not sentences:
        raise SystemExit(f"no sentences in {path}")
    return sentences


@events.init.add_listener
def _load_sentences(environment, **_) -> None:
    opts = environment.parsed_options
    SENTENCES[:] = read_sentences(getattr(opts, "sentences", None) or HERE / "sentences.txt")


# -- checking answers -----------------------------------------------------------------------------------
def polish(text) -> str | None:
    """Why `text` is not a plausible translation, or None when it is (a non-empty string with letters)."""
    if not isinstance(text, str):
        return f"expected a string, got {type(text).__name__}"
    if not text.strip():
        return "empty translation"
    if not any(ch.isalpha() for ch in text):
        return f"no letters in the translation {text!r}"
    return None


def check_translation(body, q: str | list[str], alternatives: int = 0) -> str | None:
    """Why a /translate answer to `q` is wrong, or None: translatedText mirrors q's shape, every text is
    plausible, and with alternatives=n each text has n alternatives and scores."""
    if not isinstance(body, dict) or "translatedText" not in body:
        return f"no translatedText in {str(body)[:200]}"
    texts = [q] if isinstance(q, str) else q
    out = [body["translatedText"]] if isinstance(q, str) else body["translatedText"]
    if not isinstance(out, list) or len(out) != len(texts):
        return f"translatedText does not mirror q ({len(texts)} texts): {str(body['translatedText'])[:200]}"
    for i, t in enumerate(out):
        if why := polish(t):
            return f"text {i}: {why}"
    if alternatives:
        alts = [body.get("alternatives")] if isinstance(q, str) else body.get("alternatives")
        scores = [body.get("alternative_scores")] if isinstance(q, str) else body.get("alternative_scores")
        if not isinstance(alts, list) or len(alts) != len(texts) or not isinstance(scores, list):
            return f"alternatives missing or not mirroring q: {str(body)[:200]}"
        for i, (a, s) in enumerate(zip(alts, scores)):
            if not isinstance(a, list) or len(a) != alternatives or not isinstance(s, list) or len(s) != len(a):
                return f"text {i}: expected {alternatives} alternatives with scores, got {a!r} / {s!r}"
            if why := next((w for w in map(polish, a) if w), None):
                return f"text {i}, alternative: {why}"
        if "score" not in body:
            return "no score with alternatives"
    return None


# -- the users --------------------------------------------------------------------------------------------
class TranslatorUser(HttpUser):
    """What every client does: learn the languages first (as LibreTranslate clients do), then translate."""

    abstract = True
    host = "http://127.0.0.1:8000"      # `make serve`'s address; --host (or LOCUST_HOST) overrides it

    def on_start(self) -> None:
        with self.client.get("/languages", name="/languages", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}: {r.text[:200]}")
                return
            try:
                langs = {lang["code"]: lang for lang in r.json()}
                ok = "pl" in langs.get("en", {}).get("targets", [])
            except (ValueError, TypeError, KeyError, AttributeError):
                ok = False
            if not ok:
                r.failure(f"English->Polish not offered: {r.text[:200]}")

    def translate(self, name: str, payload: dict, alternatives: int = 0) -> None:
        with self.client.post("/translate", json=payload, name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}: {r.text[:200]}")
                return
            try:
                body = r.json()
            except ValueError:
                r.failure(f"not JSON: {r.text[:200]}")
                return
            why = check_translation(body, payload["q"], alternatives)
            if why:
                r.failure(why)
            else:
                r.success()


class WebUser(TranslatorUser):
    """One sentence at a time, with reading time in between."""

    weight = 4
    wait_time = between(0.2, 1.0)

    @task(12)
    def single(self) -> None:                          # the service's default beam
        self.translate("/translate [single]", {"q": random.choice(SENTENCES), "source": "en", "target": "pl"})

    @task(3)
    def single_greedy(self) -> None:
        self.translate("/translate [single, greedy]", {"q": random.choice(SENTENCES), "beam_size": 1})

    @task(2)
    def beam_alternatives(self) -> None:               # "other translations": beam 5, two alternatives
        self.translate("/translate [beam 5, 2 alternatives]",
                       {"q": random.choice(SENTENCES), "source": "en", "target": "pl", "beam_size": 5,
                        "alternatives": 2}, alternatives=2)

    @task(1)
    def wrong_language(self) -> None:                  # a client mistake: must be a clear 400, never a 500
        with self.client.post("/translate", json={"q": random.choice(SENTENCES), "target": "de"},
                              name="/translate [unsupported pair -> 400]", catch_response=True) as r:
            try:
                error = r.json().get("error") if r.status_code == 400 else None
            except (ValueError, AttributeError):
                error = None
            if r.status_code == 400 and isinstance(error, str) and error:
                r.success()
            else:
                r.failure(f"expected 400 with a JSON error, got {r.status_code}: {r.text[:200]}")


class BatchClient(TranslatorUser):
    """Short documents: 2-8 sentences per request, the service's default beam."""

    weight = 1
    wait_time = between(0.5, 2.0)

    @task
    def batch(self) -> None:
        q = random.sample(SENTENCES, random.randint(2, 8))
        self.translate("/translate [batch 2-8]", {"q": q, "source": "en", "target": "pl"})


# -- SLO gates --------------------------------------------------------------------------------------------
def slo_misses(stats_total, opts) -> tuple[list[str], str]:
    """(one line per missed gate, a one-line summary of the run) for Locust's aggregated stats."""
    ratio, p95, rps = stats_total.fail_ratio, stats_total.get_response_time_percentile(0.95), stats_total.total_rps
    if stats_total.num_requests == 0:
        return ["no requests were made"], "0 requests"
    misses = []
    if ratio > opts.slo_max_failure_ratio:
        misses.append(f"failure ratio {ratio:.4f} > {opts.slo_max_failure_ratio:g} (--slo-max-failure-ratio)")
    if p95 > opts.slo_p95_ms:
        misses.append(f"p95 response time {p95:g} ms > {opts.slo_p95_ms:g} ms (--slo-p95-ms)")
    if rps < opts.slo_min_rps:
        misses.append(f"throughput {rps:.2f} requests/s < {opts.slo_min_rps:g} (--slo-min-rps)")
    summary = (f"{stats_total.num_requests} requests, {stats_total.num_failures} failures (ratio {ratio:.4f}), "
               f"p95 {p95:g} ms, {rps:.2f} requests/s")
    return misses, summary


@events.quitting.add_listener
def _slo_gate(environment, **_) -> None:
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return                                         # the master judges the whole run
    opts, total = environment.parsed_options, environment.stats.total
    misses, summary = slo_misses(total, opts)
    for m in misses:
        log.error("SLO gate missed: %s", m)
    if misses:
        log.error("SLO gates FAILED (%d missed): %s", len(misses), summary)
        environment.process_exit_code = 1
    else:
        log.info("SLO gates passed: %s", summary)
        environment.process_exit_code = 0
    if getattr(opts, "slo_report", ""):
        report = {"passed": not misses, "misses": misses, "requests": total.num_requests,
                  "failures": total.num_failures, "failure_ratio": total.fail_ratio,
                  "requests_per_s": total.total_rps, "avg_ms": total.avg_response_time,
                  **{f"p{int(q * 100)}_ms": total.get_response_time_percentile(q) for q in (0.5, 0.95, 0.99)},
                  "max_ms": total.max_response_time,
                  "thresholds": {"max_failure_ratio": opts.slo_max_failure_ratio, "p95_ms": opts.slo_p95_ms,
                                 "min_rps": opts.slo_min_rps},
                  "errors": {f"{e.method} {e.name}: {e.error}": e.occurrences
                             for e in environment.stats.errors.values()}}
        Path(opts.slo_report).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.slo_report).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":      # debugging: one user, every request printed (pick the class by name)
    users = {"WebUser": WebUser, "BatchClient": BatchClient}
    run_single_user(next((users[a] for a in sys.argv[1:] if a in users), WebUser), include_length=True)
