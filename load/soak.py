"""Soak test: a steady Locust load for a long time; pass only with zero failures, the SLO gates met, and the
service's resident memory (RSS) growing less than --max-rss-growth from the end of the warm-up to the end.

    python load/soak.py                               # starts `python -m service` (the shipped model) itself
    python load/soak.py --host http://127.0.0.1:8000  # or loads a service that is already running
    python load/soak.py --duration 60 --warmup 20     # the short version the test suite runs

RSS is read from the service's own GET /metrics (`process_resident_memory_bytes`, prometheus-client's process
collector, Linux, plus `translator_engine_resident_memory_bytes`, the engine process's) every --sample-every seconds, so it works for a service in a container too (with one worker
process: with several, each scrape answers for whichever worker took it). Writes, under the --csv prefix:
Locust's CSVs and HTML report, PREFIX_slo.json (the locustfile's gate report), PREFIX_rss.csv (seconds, RSS
bytes), PREFIX.png (latency, throughput, RSS) and PREFIX_summary.json. Exit code 0 only when every check
passed; each missed check is printed.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def rss_bytes(host: str, token: str = "") -> float:
    """The service's memory from its /metrics: process_resident_memory_bytes (the server process) plus
    translator_engine_resident_memory_bytes (the engine process, which holds the model; absent or 0 when the
    engine runs in the server process)."""
    req = urllib.request.Request(host.rstrip("/") + "/metrics",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    found = {}
    for line in text.splitlines():
        name = line.split(" ", 1)[0]
        if name in ("process_resident_memory_bytes", "translator_engine_resident_memory_bytes"):
            found[name] = float(line.split()[1])
    if "process_resident_memory_bytes" not in found:
        raise SystemExit(f"{host}/metrics has no process_resident_memory_bytes (not Linux, or several workers?)")
    return sum(found.values())


def wait_ready(host: str, proc: subprocess.Popen | None, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(host + "/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{host} not ready after {timeout:.0f} s")


def start_service(model_dir: str | None, log_path: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
    if model_dir:
        cmd += ["--model-dir", model_dir]
    log = log_path.open("w")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def final_stats(report: Path) -> dict:
    """The run's exact totals from the locustfile's --slo-report (Locust's own CSVs trail by up to a second)."""
    if not report.exists():
        raise SystemExit(f"Locust wrote no {report}: it did not finish its run (see its output above)")
    r = json.loads(report.read_text())
    return {"requests": r["requests"], "failures": r["failures"], "rps": round(r["requests_per_s"], 2),
            "p50_ms": r["p50_ms"], "p95_ms": r["p95_ms"], "p99_ms": r["p99_ms"], "max_ms": round(r["max_ms"]),
            "errors": r["errors"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Arguments after -- go to Locust (e.g. -- --slo-p95-ms 500).")
    p.add_argument("--host", default=None, help="a running service; without it one is started on loopback")
    p.add_argument("--model-dir", default=None, help="with no --host: the model to serve [default: the shipped one]")
    p.add_argument("--duration", type=float, default=600, help="seconds of load [default: %(default)s]")
    p.add_argument("--warmup", type=float, default=60,
                   help="seconds before the baseline RSS sample [default: %(default)s]")
    p.add_argument("--users", type=int, default=20, help="steady Locust users [default: %(default)s]")
    p.add_argument("--spawn-rate", type=float, default=5, help="users started per second [default: %(default)s]")
    p.add_argument("--sample-every", type=float, default=5, help="seconds between RSS samples [default: %(default)s]")
    p.add_argument("--max-rss-growth", type=float, default=0.10,
                   help="largest allowed (RSS at end - RSS after warm-up) / RSS after warm-up [default: %(default)s]")
    p.add_argument("--csv", type=Path, default=HERE / "results" / "soak",
                   help="output prefix [default: load/results/soak]")
    p.add_argument("--metrics-token", default=os.environ.get("TRANSLATOR_METRICS_TOKEN", ""),
                   help="bearer token for /metrics, if the service needs one [env TRANSLATOR_METRICS_TOKEN]")
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.warmup >= args.duration:
        p.error("--warmup must be shorter than --duration")
    prefix: Path = args.csv
    prefix.parent.mkdir(parents=True, exist_ok=True)

    service = None
    host = args.host.rstrip("/") if args.host else None
    if host is None:
        service, host = start_service(args.model_dir, prefix.parent / f"{prefix.name}_service.log")
        print(f"started the service (pid {service.pid}) on {host}; log: {prefix.parent / f'{prefix.name}_service.log'}",
              flush=True)
    try:
        wait_ready(host, service)
        return soak(args, host, prefix, extra)
    finally:
        if service is not None:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(timeout=30)
            except subprocess.TimeoutExpired:
                service.kill()


def soak(args, host: str, prefix: Path, extra: list[str]) -> int:
    cmd = [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless", "--host", host,
           "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.duration:g}s", "--stop-timeout", "10",
           "--csv", str(prefix), "--csv-full-history", "--html", f"{prefix}.html",
           "--slo-report", f"{prefix}_slo.json", "--only-summary", *extra]
    print(f"soak: {args.users} users for {args.duration:g} s against {host}; RSS baseline at {args.warmup:g} s",
          flush=True)
    Path(f"{prefix}_slo.json").unlink(missing_ok=True)          # never read a previous run's report
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    locust = subprocess.Popen(cmd, cwd=REPO)
    next_sample = 0.0
    while locust.poll() is None:
        now = time.monotonic() - t0
        if now >= next_sample:
            samples.append((round(now, 1), rss_bytes(host, args.metrics_token)))
            next_sample += args.sample_every
        time.sleep(0.2)
    samples.append((round(time.monotonic() - t0, 1), rss_bytes(host, args.metrics_token)))   # at the end
    with open(f"{prefix}_rss.csv", "w", newline="") as f:
        csv.writer(f).writerows([("seconds", "rss_bytes"), *samples])

    stats = final_stats(Path(f"{prefix}_slo.json"))
    warm = next(rss for t, rss in samples if t >= args.warmup)
    end = samples[-1][1]
    peak = max(rss for t, rss in samples if t >= args.warmup)
    growth = (end - warm) / warm
    summary = {**stats, "users": args.users, "duration_s": args.duration, "warmup_s": args.warmup,
               "locust_exit_code": locust.returncode, "rss_start_mib": round(samples[0][1] / 2**20, 1),
               "rss_after_warmup_mib": round(warm / 2**20, 1), "rss_end_mib": round(end / 2**20, 1),
               "rss_peak_after_warmup_mib": round(peak / 2**20, 1), "rss_growth": round(growth, 4)}
    Path(f"{prefix}_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    try:
        sys.path.insert(0, str(HERE))
        import plot
        plot.plot(plot.read_history(Path(f"{prefix}_stats_history.csv")), Path(f"{prefix}.png"),
                  f"soak: {args.users} users, {args.duration:g} s", rss=samples)
    except ImportError as e:      # matplotlib missing: the figures still stand
        print(f"no plot ({e})")

    problems = []
    if locust.returncode != 0:
        problems.append(f"Locust exited with {locust.returncode} (an SLO gate was missed; see its log above)")
    if stats["requests"] == 0:
        problems.append("no requests were made")
    if stats["failures"]:
        problems.append(f"{stats['failures']} failed requests (a soak must have none): {stats['errors']}")
    if growth >= args.max_rss_growth:
        problems.append(f"RSS grew {growth:.1%} after warm-up ({warm / 2**20:.1f} -> {end / 2**20:.1f} MiB), "
                        f"limit {args.max_rss_growth:.0%} (--max-rss-growth)")
    print(f"soak summary: {stats['requests']} requests, {stats['failures']} failures, {stats['rps']} requests/s, "
          f"p50 {stats['p50_ms']:g} / p95 {stats['p95_ms']:g} / p99 {stats['p99_ms']:g} ms; "
          f"RSS {summary['rss_start_mib']} MiB at start, {summary['rss_after_warmup_mib']} after warm-up, "
          f"{summary['rss_end_mib']} at the end (peak {summary['rss_peak_after_warmup_mib']}): growth {growth:+.2%}")
    for problem in problems:
        print(f"SOAK FAILED: {problem}")
    if not problems:
        print("SOAK PASSED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
