"""Capacity of one replica, for sizing replicas and the autoscaler (docs/scaling.md):

    .venv/bin/python deploy/capacity.py --cores 1 2 --out docs/scaling

For each core count N, a real `python -m service` (the shipped model, the service's defaults: beam 3,
continuous batching, engine process) is pinned to N cores with `taskset` and given N onnxruntime intra-op
threads, as a replica with a CPU limit of N gets in Kubernetes (deploy/kubernetes: TRANSLATOR_INTRA_THREADS =
limits.cpu). A closed-loop load generator (bench.loadgen's client: C connections, each sending its next
one-sentence POST /translate as soon as the last is answered, held-out sentences from load/sentences.txt) steps
through concurrencies; for each step it records sentences/s, p50/p95/p99 latency, and the mean of the
autoscaler's metric, translator_queue_size + translator_active_sequences, read from the service's /metrics
every 0.25 s. With 1 core the load generator runs on the other core; with 2 cores it shares them with the service
(this machine has 2), which costs the service a few percent (about 0.05 ms of CPU per request).
Writes OUT/capacity.json and prints a table.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
STEPS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)


def sentences() -> list[str]:
    lines = (REPO / "load" / "sentences.txt").read_text(encoding="utf-8").splitlines()
    return [s for s in lines if s.strip() and not s.startswith("#")]


def load(url: str, concurrency: int, seconds: float) -> None:
    """The load process: one JSON line of (latency s, status) per request."""
    from urllib.parse import urlsplit

    from bench.loadgen import client, order

    u = urlsplit(url)
    bodies = [json.dumps({"q": s, "source": "en", "target": "pl"}).encode() for s in sentences()]
    out: list = []

    async def run():
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*(client(u.hostname, u.port, "/translate", bodies, order(c, len(bodies)), stop_at, out, c)
                               for c in range(concurrency)))
    t0 = time.perf_counter()
    asyncio.run(run())
    print(json.dumps({"wall": time.perf_counter() - t0, "requests": [(lat, status) for _, lat, status, _ in out]}))


def in_flight(url: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    values = dict(re.findall(r"^(translator_queue_size|translator_active_sequences) (\S+)$", text, re.M))
    return float(values["translator_queue_size"]) + float(values["translator_active_sequences"])


def measure(cores: int, seconds: float, port: int, steps_c: tuple[int, ...] = STEPS) -> dict:
    service_cpus = ",".join(map(str, range(cores)))
    load_cpus = str(cores) if cores < os.cpu_count() else service_cpus
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TRANSLATOR_INTRA_THREADS": str(cores), "TRANSLATOR_PORT": str(port),
           "TRANSLATOR_LOG_LEVEL": "warning", "TRANSLATOR_PROVIDER": "cpu"}
    server = subprocess.Popen(["taskset", "-c", service_cpus, sys.executable, "-m", "service"], cwd=REPO, env=env)
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(url + "/health/ready", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.25)
        else:
            raise SystemExit("the service did not become ready")
        steps = []
        for c in steps_c:
            samples: list[float] = []
            done = threading.Event()

            def sample():
                time.sleep(1.0)                     # skip the ramp
                while not done.is_set():
                    samples.append(in_flight(url))
                    time.sleep(0.25)
            sampler = threading.Thread(target=sample)
            sampler.start()
            r = subprocess.run(["taskset", "-c", load_cpus, sys.executable, __file__, "_load", url, str(c), str(seconds)],
                               cwd=REPO, capture_output=True, text=True, check=True)
            done.set()
            sampler.join()
            result = json.loads(r.stdout)
            ok = sorted(lat for lat, status in result["requests"] if status == 200)
            errors = sum(1 for _, status in result["requests"] if status != 200)
            q = statistics.quantiles(ok, n=100, method="inclusive")
            step = {"concurrency": c, "sentences_per_s": round(len(ok) / result["wall"], 1), "requests": len(ok),
                    "errors": errors, "p50_ms": round(q[49] * 1000, 1), "p95_ms": round(q[94] * 1000, 1),
                    "p99_ms": round(q[98] * 1000, 1), "in_flight_mean": round(statistics.fmean(samples), 2)}
            steps.append(step)
            print(f"{cores} core(s)  C={c:3}  {step['sentences_per_s']:6.1f} sentences/s  p50 {step['p50_ms']:6.1f}  "
                  f"p95 {step['p95_ms']:6.1f}  p99 {step['p99_ms']:6.1f} ms  in flight {step['in_flight_mean']:5.1f}  "
                  f"errors {errors}", flush=True)
        return {"cores": cores, "service_cpus": service_cpus, "load_cpus": load_cpus, "steps": steps}
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    if sys.argv[1:2] == ["_load"]:
        load(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=float, default=12.0, help="per concurrency step")
    ap.add_argument("--steps", type=int, nargs="+", default=list(STEPS), help="concurrencies")
    ap.add_argument("--port", type=int, default=18765)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "scaling")
    args = ap.parse_args()
    model = json.loads((REPO / "models" / "eng-pol" / "model.json").read_text())
    runs = [measure(n, args.seconds, args.port, tuple(args.steps)) for n in args.cores]
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "model": model["version"],
              "command": ".venv/bin/python deploy/capacity.py " + " ".join(sys.argv[1:]),
              "cpu": next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), ""),
              "settings": "service defaults (beam 3, continuous batching, max batch 64, engine process), "
                          "TRANSLATOR_INTRA_THREADS = cores, one sentence per request", "runs": runs}
    (args.out / "capacity.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out / 'capacity.json'}")


if __name__ == "__main__":
    main()
