"""load/: the Locust load test and the soak, run headless as real processes against a real service on loopback.

Locust is only ever run in a subprocess (importing it here would monkey-patch this process with gevent).
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import REPO, SHIPPED_MODEL, Server

LOAD = REPO / "load"


@pytest.fixture(scope="module")
def service():
    """The shipped model served by `python -m service` (one ORT thread), shared by the tests of this module."""
    s = Server(SHIPPED_MODEL).wait_ready()
    yield s
    s.stop()


def locust(host: str, out: Path, *args: str, files: str = "locustfile.py", timeout: float = 180):
    """Run Locust headless; -> (CompletedProcess, the --slo-report JSON or None)."""
    report = out.parent / f"{out.name}_slo.json"
    cmd = [sys.executable, "-m", "locust", "-f", ",".join(str(LOAD / f) for f in files.split(",")), "--headless",
           "--host", host, "--csv", str(out), "--csv-full-history", "--slo-report", str(report), "--only-summary",
           *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    return proc, json.loads(report.read_text()) if report.exists() else None


def csv_rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_step_load_passes_gates_with_zero_failures(service, tmp_path):
    out = tmp_path / "load"
    proc, report = locust(service.url, out, "--step-users", "3", "--step-seconds", "8", "--steps", "3",
                          "--step-spawn-rate", "3", "--slo-max-failure-ratio", "0", "--slo-p95-ms", "2000",
                          "--slo-min-rps", "2", files="locustfile.py,shape.py")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "SLO gates passed" in log
    assert report["passed"] and report["failures"] == 0 and report["requests"] > 50, report
    rows = csv_rows(tmp_path / "load_stats.csv")
    total = next(r for r in rows if r["Name"] == "Aggregated")
    assert total["Failure Count"] == "0" and int(total["Request Count"]) > 50
    names = {r["Name"] for r in rows}          # grouped by name, every kind of request was made
    assert {"/translate [single]", "/translate [batch 2-8]", "/translate [beam 5, 2 alternatives]",
            "/languages"} <= names, names
    users = [int(r["User Count"]) for r in csv_rows(tmp_path / "load_stats_history.csv")]
    assert max(users) == 9 and 3 in users and 6 in users        # the step shape: 3, 6, 9 users
    # the plot and the summary table
    plot = subprocess.run([sys.executable, str(LOAD / "plot.py"), str(out)], capture_output=True, text=True)
    assert plot.returncode == 0, plot.stderr
    assert (tmp_path / "load.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| **Aggregated** |" in (tmp_path / "load_summary.md").read_text()


def test_gate_fails_when_thresholds_cannot_be_met(service, tmp_path):
    proc, report = locust(service.url, tmp_path / "strict", "-u", "2", "-r", "2", "-t", "6s",
                          "--slo-p95-ms", "0.001", "--slo-min-rps", "100000")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log
    assert "SLO gate missed: p95 response time" in log and "SLO gate missed: throughput" in log
    assert not report["passed"] and len(report["misses"]) == 2
    assert report["failures"] == 0 and report["requests"] > 0      # the gate failed the run, not an error


class WrongAnswers(BaseHTTPRequestHandler):
    """A translator that answers 200 with the wrong things: empty text, short lists, no alternatives."""

    def do_GET(self):
        self.reply(200, [{"code": "en", "name": "English", "targets": ["pl"]}])

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        q = body["q"]
        self.reply(200, {"translatedText": "" if isinstance(q, str) else q[:1]})

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_wrong_answers_are_failures(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), WrongAnswers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # 20 users for 10 s: ~250 WebUser tasks, so the rare (1 in 18) wrong-language task runs too
        # (the chance that it never does is below 1e-6)
        proc, report = locust(f"http://127.0.0.1:{server.server_port}", tmp_path / "wrong", "-u", "20", "-r", "20",
                              "-t", "10s")
    finally:
        server.shutdown()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert report["failures"] == report["requests"] - 20, report         # all but the 20 GET /languages
    errors = "\n".join(report["errors"])
    assert "empty translation" in errors
    assert "does not mirror q" in errors
    assert "expected 400 with a JSON error, got 200" in errors


def test_soak_60s_zero_failures_and_flat_memory(service, tmp_path):
    out = tmp_path / "soak"
    proc = subprocess.run([sys.executable, str(LOAD / "soak.py"), "--host", service.url, "--duration", "60",
                           "--warmup", "20", "--users", "8", "--csv", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=240)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "SOAK PASSED" in log
    summary = json.loads((tmp_path / "soak_summary.json").read_text())
    assert summary["failures"] == 0 and summary["requests"] > 300, summary
    assert summary["rss_growth"] < 0.10 and summary["rss_after_warmup_mib"] > 10, summary
    rss = csv_rows(tmp_path / "soak_rss.csv")
    assert len(rss) >= 10 and float(rss[-1]["seconds"]) >= 55
