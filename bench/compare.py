"""`python -m bench.compare --old DIR [--new DIR]`: two checkouts of the service side by side, same machine, same
load, alternating rounds (old, new; then new, old; ...), so drift hits both alike.

DIR is a checkout (e.g. `git worktree add ../old 647b2e5`); each is served by `python -m service` started in it
(this virtualenv's interpreter, the shipped model of this checkout) and loaded by this checkout's
`bench.loadgen` (greedy, closed loop, keep-alive connections):
  - sentences/s at 32 and 64 clients, and one client's p50 latency (queue 100000);
  - under a flood (the default settings, queue 64): answered/s with 400 clients retrying at once, and with 32;
  - one client again, both servers up and idle, the same sentences sent to each in turn (drift cancels out).
Writes docs/benchmarks/refactor.md and refactor.json (or --out)."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run import REPO, free_port, wait_ready

SENTENCES = REPO / "docs" / "benchmarks" / "sentences.json"


def serve(checkout: Path, env_over: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "TRANSLATOR_MODEL_DIR": str(REPO / "models" / "eng-pol"), "TRANSLATOR_PORT": str(port),
           "TRANSLATOR_LOG_LEVEL": "warning", **env_over}
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen([sys.executable, "-m", "service"], env=env, cwd=checkout)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url, f"the server in {checkout}")
    return proc, url


def load(url: str, clients: int, seconds: float) -> dict:
    with tempfile.TemporaryFile("w+") as f:
        subprocess.run([sys.executable, "-m", "bench.loadgen", url + "/translate", str(SENTENCES), str(clients),
                        str(seconds)], stdout=f, check=True, cwd=REPO)
        f.seek(0)
        text = f.read()
    try:
        res = json.loads(text)
    except ValueError:
        Path("/tmp/bench-compare-bad-output.txt").write_text(text)
        raise
    ok = sorted(r[1] for r in res["requests"] if r[2] == 200)
    refused = sum(1 for r in res["requests"] if r[2] == 503)
    return {"answered_per_s": len(ok) / res["wall"], "p50_ms": ok[len(ok) // 2] * 1e3 if ok else None,
            "refused_per_s": refused / res["wall"], "other": len(res["requests"]) - len(ok) - refused}


def measure(checkout: Path, seconds: float, flood_only: bool = False) -> dict:
    res = {}
    if not flood_only:
        proc, url = serve(checkout, {"TRANSLATOR_MAX_QUEUE": "100000"})
        try:
            load(url, 32, 2)                                    # warm-up
            res = {"32 clients": load(url, 32, seconds), "64 clients": load(url, 64, seconds),
                   "1 client": load(url, 1, seconds)}
        finally:
            proc.terminate()
            proc.wait(30)
    proc, url = serve(checkout, {"TRANSLATOR_MAX_QUEUE": "64"})
    try:
        res["flood: 32 clients"] = load(url, 32, seconds)
        res["flood: 400 no-backoff"] = load(url, 400, seconds)
    finally:
        proc.terminate()
        proc.wait(30)
    return res


def paired_one_client(urls: dict[str, str], n: int) -> dict[str, float]:
    """One client, both servers up and idle: the same sentence to each in turn (order alternating), n sentences;
    -> p50 latency in ms per side. Interleaved request by request, so the machine's drift cancels out."""
    import http.client
    from urllib.parse import urlsplit

    sentences = json.loads(SENTENCES.read_text())
    conns = {k: http.client.HTTPConnection(urlsplit(u).hostname, urlsplit(u).port, timeout=30) for k, u in urls.items()}
    times: dict[str, list[float]] = {k: [] for k in urls}
    for i in range(n + 20):
        body = json.dumps({"q": sentences[i % len(sentences)], "beam_size": 1})
        for k in (list(urls) if i % 2 == 0 else list(urls)[::-1]):
            t0 = time.perf_counter()
            conns[k].request("POST", "/translate", body, {"Content-Type": "application/json"})
            r = conns[k].getresponse()
            r.read()
            if r.status == 200 and i >= 20:              # the first 20: warm-up
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, required=True)
    p.add_argument("--new", type=Path, default=REPO)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--paired", type=int, default=300, help="sentences per side in the interleaved one-client run")
    p.add_argument("--flood-only", action="store_true", help="only the flood loads (writes refactor-flood.md/.json)")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks")
    args = p.parse_args()
    sides = {"old": args.old.resolve(), "new": args.new.resolve()}
    rounds: dict = {k: [] for k in sides}
    for r in range(args.rounds):
        for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
            rounds[name].append(res := measure(sides[name], args.seconds, args.flood_only))
            print(f"round {r + 1} {name}: " + " | ".join(
                f"{k}: {v['answered_per_s']:.0f}/s p50 {v['p50_ms']:.1f} ms" for k, v in res.items()), flush=True)
        if args.flood_only:
            continue
        procs = {k: serve(d, {}) for k, d in sides.items()}
        try:
            paired = paired_one_client({k: url for k, (_, url) in procs.items()}, args.paired)
        finally:
            for proc, _ in procs.values():
                proc.terminate()
                proc.wait(30)
        for k in sides:
            rounds[k][-1]["1 client, interleaved"] = {"p50_ms": paired[k]}
        print(f"round {r + 1} one client interleaved, p50 ms: {paired}", flush=True)
    revs = {k: subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=d, capture_output=True,
                              text=True).stdout.strip() for k, d in sides.items()}
    rows = [("sentences/s, 32 clients", "32 clients", "answered_per_s", "{:.0f}"),
            ("sentences/s, 64 clients", "64 clients", "answered_per_s", "{:.0f}"),
            ("one client, p50 ms (closed loop, its own run)", "1 client", "p50_ms", "{:.2f}"),
            ("one client, p50 ms (both servers up, requests interleaved)", "1 client, interleaved", "p50_ms", "{:.2f}"),
            ("flood (queue 64): answered/s, 400 no-backoff clients", "flood: 400 no-backoff", "answered_per_s", "{:.0f}"),
            ("flood (queue 64): answered/s, 32 clients", "flood: 32 clients", "answered_per_s", "{:.0f}"),
            ("flood (queue 64): refused/s, 400 no-backoff clients", "flood: 400 no-backoff", "refused_per_s", "{:.0f}")]
    cmd = ".venv/bin/python -m bench.compare --old " + str(args.old) + \
        f" --rounds {args.rounds} --seconds {args.seconds:g}" + (" --flood-only" if args.flood_only else
                                                                 f" --paired {args.paired}")
    lines = [f"# Before and after issue 13 (`python -m bench.compare`), {datetime.date.today()}", "",
             f"Old: {revs['old']} ({sides['old']}); new: {revs['new']}. Same machine (2 cores, shared), same shipped "
             f"model, same load generator (greedy, closed loop, {args.seconds:g} s a load, on the same cores), "
             f"{args.rounds} rounds alternating old/new. Each cell: the rounds' values, then their median.", "",
             f"Command: `{cmd}`", "",
             "| measure | old | new | new / old (medians) |", "|---|---|---|---|"]
    if args.flood_only:
        rows = [r for r in rows if r[1].startswith("flood")]
    for label, load_, key, fmt in rows:
        vals = {k: [x[load_][key] for x in rounds[k]] for k in sides}
        med = {k: statistics.median(v) for k, v in vals.items()}
        cell = lambda k: " / ".join(fmt.format(v) for v in vals[k]) + f" (**{fmt.format(med[k])}**)"  # noqa: E731
        lines.append(f"| {label} | {cell('old')} | {cell('new')} | {med['new'] / med['old']:.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    name = "refactor-flood" if args.flood_only else "refactor"
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    (args.out / f"{name}.json").write_text(json.dumps({"revisions": revs, "rounds": rounds}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
