"""`python -m bench.threads`: the intra-op thread default, measured through HTTP (continuous batching, shipped
model, greedy) at 1 and 32 clients with 1 and 2 onnxruntime threads, alternating, twice; prints one line a run.
Figures from a run are in docs/benchmarks/README.md ("Thread setting")."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

SENTENCES = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "sentences.json"
PORT = 8791


def run(threads: int, clients: int, seconds: float = 8) -> tuple[float, float, float]:
    """-> (sentences/s, p50 ms, p99 ms) for one server process with `threads` intra-op threads."""
    env = {**os.environ, "TRANSLATOR_INTRA_THREADS": str(threads), "TRANSLATOR_PORT": str(PORT),
           "TRANSLATOR_LOG_LEVEL": "warning"}
    server = subprocess.Popen([sys.executable, "-m", "service"], env=env)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{PORT}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        out = json.loads(subprocess.run(
            [sys.executable, "-m", "bench.loadgen", f"http://127.0.0.1:{PORT}/translate", str(SENTENCES),
             str(clients), str(seconds)], capture_output=True, text=True, check=True).stdout)
    finally:
        server.terminate()
        server.wait()
    lat = sorted(r[1] for r in out["requests"] if r[2] == 200)
    return len(lat) / out["wall"], lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000


if __name__ == "__main__":
    for _ in range(2):
        for threads in (1, 2):
            for clients in (1, 32):
                rps, p50, p99 = run(threads, clients)
                print(f"intra={threads} c={clients}: {rps:.0f}/s p50 {p50:.1f} ms p99 {p99:.1f} ms", flush=True)
