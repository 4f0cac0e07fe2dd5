"""`python -m bench.flood`: admitted vs refused throughput when the queue is full, side by side: the engine in
threads vs in its own process, the server's thread at nice 10, and early retries held (the default).

Per configuration one server (TRANSLATOR_MAX_QUEUE=64, shipped model) and closed-loop load-generator runs of 8 s:
32 clients (within capacity), 400 clients that retry at once when refused (ignoring Retry-After), and 400 clients
that wait the Retry-After second. Configurations alternate, two rounds, so the machine's drift hits them alike.
"Kept" is answered/s under a flood divided by answered/s at 32 clients on the same server in the same round (the
issue's "keeps serving the admitted requests at full speed" is kept = 100%). The load generator runs on the same
cores as the server. Writes docs/benchmarks/flood.md and flood.json; figures from a run: README, "Under load,
faults and shutdown"."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys

from bench.run import REPO, start_server

S = REPO / "docs" / "benchmarks" / "sentences.json"
QUEUE = 64   # 32 clients stay within it: a refused client would be held, which is not what the baseline measures
OUT = REPO / "docs" / "benchmarks"
OFF = {"TRANSLATOR_HOLD_EARLY_RETRIES": "off"}
CONFIGS = {"engine in threads": {"TRANSLATOR_ENGINE_PROCESS": "off", **OFF},
           "engine process": {"TRANSLATOR_ENGINE_PROCESS": "on", **OFF},
           "engine process, HTTP nice 10": {"TRANSLATOR_ENGINE_PROCESS": "on", "TRANSLATOR_HTTP_NICE": "10", **OFF},
           "engine process, early retries held (default)": {"TRANSLATOR_ENGINE_PROCESS": "on",
                                                            "TRANSLATOR_HOLD_EARLY_RETRIES": "on"}}
LOADS = {"32 clients": (32, []), "400 no-backoff": (400, []), "400 honouring Retry-After": (400, ["--honour-retry-after"])}


def run_load(url: str, clients: int, flags: list[str], seconds: float = 8) -> dict:
    res = json.loads(subprocess.run([sys.executable, "-m", "bench.loadgen", url + "/translate", str(S), str(clients),
                                     str(seconds), *flags], capture_output=True, text=True, check=True).stdout)
    ok = sorted(r[1] for r in res["requests"] if r[2] == 200)
    refused = sorted(r[1] for r in res["requests"] if r[2] == 503)
    p50 = lambda xs: xs[len(xs) // 2] * 1e3 if xs else None   # noqa: E731
    return {"answered_per_s": len(ok) / res["wall"], "refused_per_s": len(refused) / res["wall"],
            "other": len(res["requests"]) - len(ok) - len(refused), "answered_p50_ms": p50(ok),
            "refusal_p50_ms": p50(refused)}


def main() -> None:
    rounds: dict = {c: [] for c in CONFIGS}
    for r in range(2):
        for name, env in CONFIGS.items():
            proc, url = start_server(REPO / "models" / "eng-pol", {"TRANSLATOR_MAX_QUEUE": str(QUEUE), **env})
            try:
                res = {load: run_load(url, c, flags) for load, (c, flags) in LOADS.items()}
            finally:
                proc.terminate(); proc.wait()
            for load in LOADS:
                res[load]["kept"] = res[load]["answered_per_s"] / res["32 clients"]["answered_per_s"]
            rounds[name].append(res)
            print(f"round {r + 1} {name}: " + " | ".join(
                f"{load}: {v['answered_per_s']:.0f} answered/s ({v['kept']:.0%}), {v['refused_per_s']:.0f} refused/s, other {v['other']}"
                for load, v in res.items()), flush=True)
    lines = ["# Under a flood: engine in threads vs its own process (`python -m bench.flood`)", "",
             f"Queue limit {QUEUE} sentences; closed-loop clients, 8 s per load; the load generator on the same 2 cores. "
             "Two rounds, configurations alternating; each cell: round 1 / round 2. Kept: answered/s under that load "
             "/ answered/s at 32 clients (same server, same round).", "",
             "| configuration | load | answered/s | kept | refused/s | answered p50 ms | refusal p50 ms |",
             "|---|---|---|---|---|---|---|"]
    two = lambda rs, k, f: " / ".join("-" if x[k] is None else f.format(x[k]) for x in rs)   # noqa: E731
    for name, rs in rounds.items():
        for load in LOADS:
            cells = [x[load] for x in rs]
            lines.append(f"| {name} | {load} | {two(cells, 'answered_per_s', '{:.0f}')} | "
                         f"{two(cells, 'kept', '{:.0%}')} | {two(cells, 'refused_per_s', '{:.0f}')} | "
                         f"{two(cells, 'answered_p50_ms', '{:.0f}')} | {two(cells, 'refusal_p50_ms', '{:.1f}')} |")
    base = rounds["engine in threads"]
    lines += ["", "Process / threads, answered/s (mean of the rounds' ratios):", ""]
    for name in list(CONFIGS)[1:]:
        for load in LOADS:
            ratio = statistics.mean(x[load]["answered_per_s"] / b[load]["answered_per_s"]
                                    for x, b in zip(rounds[name], base))
            lines.append(f"- {name}, {load}: {ratio:.2f}x")
    (OUT / "flood.md").write_text("\n".join(lines) + "\n")
    (OUT / "flood.json").write_text(json.dumps(rounds, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
