"""`python -m bench.flood`: admitted vs refused throughput when the queue is full. One server
(TRANSLATOR_MAX_QUEUE=32, shipped model), closed-loop load-generator runs of 8 s alternating 32 clients (within
capacity), 400 clients that retry at once when refused, ignoring Retry-After, and 400 clients that wait the
Retry-After second. The load generator runs on the same cores as the server. Figures from a run: README, "Under load, faults and shutdown"."""
from __future__ import annotations

import json
import subprocess
import sys

from bench.run import REPO, start_server

S = REPO / "docs" / "benchmarks" / "sentences.json"


def main() -> None:
    proc, url = start_server(REPO / "models" / "eng-pol", {"TRANSLATOR_MAX_QUEUE": "32"})
    try:
        for _ in range(2):
            for clients, flags in ((32, []), (400, []), (400, ["--honour-retry-after"])):
                res = json.loads(subprocess.run([sys.executable, "-m", "bench.loadgen", url + "/translate", str(S),
                                                 str(clients), "8", *flags],
                                                capture_output=True, text=True, check=True).stdout)
                ok = [r for r in res["requests"] if r[2] == 200]; refused = [r for r in res["requests"] if r[2] == 503]
                other = len(res["requests"]) - len(ok) - len(refused)
                lat = sorted(r[1] for r in refused)
                print(f"{clients} clients{' honouring Retry-After' if flags else ''}: {len(ok)/res['wall']:.0f} answered/s, "
                      f"{len(refused)/res['wall']:.0f} refused/s, other {other}, "
                      f"refusal p50 {lat[len(lat)//2]*1000 if lat else float('nan'):.1f} ms", flush=True)
    finally:
        proc.terminate(); proc.wait()


if __name__ == "__main__":
    main()
