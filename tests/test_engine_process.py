"""The engine in its own process (service/engine_process.py), against real `python -m service` processes: where
the model lives, what happens when the engine process dies, the server thread's priority, and the threads mode."""
from __future__ import annotations

import os
import re
import signal
import threading
import time

import httpx

from conftest import SHIPPED_MODEL
from test_faults import LONG, metric, wait_for


def engine_pid(srv) -> int:
    m = re.search(r"ready on \S+ \(process (\d+), engine process (\d+)\)", srv.text())
    assert m, srv.text()
    assert int(m.group(1)) == srv.proc.pid
    return int(m.group(2))


def nice_of(pid: int, tid: int) -> int:
    return int(open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()[16])


def test_the_model_runs_in_a_child_process_and_answers_like_threads(start_server):
    srv = start_server(SHIPPED_MODEL, "--http-nice", "7")
    pid = engine_pid(srv)
    assert int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]) == srv.proc.pid   # its parent
    # the server's event-loop thread runs nicer than the engine's threads
    assert nice_of(srv.proc.pid, srv.proc.pid) == 7
    assert {nice_of(pid, int(t)) for t in os.listdir(f"/proc/{pid}/task")} == {0}

    texts = ["I love you.", "Where is the station?", "", LONG]
    procs = httpx.post(srv.url + "/translate", json={"q": texts, "beam_size": 1}, timeout=30).json()["translatedText"]
    threads = start_server(SHIPPED_MODEL, "--engine-process", "off")
    assert "engine process" not in threads.text() and " ready on " in threads.text()
    assert httpx.post(threads.url + "/translate", json={"q": texts, "beam_size": 1}, timeout=30).json() == \
        {"translatedText": procs}
    # the engine's metrics reach the server's /metrics
    assert wait_for(lambda: metric(srv.url, "translator_generated_tokens_count") == 3, timeout=5)
    assert metric(srv.url, "translator_batch_size_count") > 0 and metric(srv.url, "translator_active_sequences") == 0
    engine_rss = metric(srv.url, "translator_engine_resident_memory_bytes")   # what the soak test adds up
    assert engine_rss > 50 * 2**20 and metric(threads.url, "translator_engine_resident_memory_bytes") == 0


def test_a_dead_engine_fails_its_requests_and_stops_the_server_with_status_1(start_server):
    srv = start_server(SHIPPED_MODEL, "--max-batch", "8")
    pid = engine_pid(srv)
    answer = {}
    slow = threading.Thread(target=lambda: answer.update(r=httpx.post(
        srv.url + "/translate", json={"q": [LONG] * 16, "beam_size": 8}, timeout=60)))
    slow.start()
    assert wait_for(lambda: metric(srv.url, "translator_active_sequences") > 0)
    t0 = time.time()
    os.kill(pid, signal.SIGKILL)
    slow.join(30)
    r = answer["r"]
    assert r.status_code == 500 and r.json()["type"] == "model_error", r.text     # failed at once, no hang
    assert time.time() - t0 < 10
    srv.proc.wait(timeout=30)                                                    # then the server exits, status 1
    out = srv.stop()
    assert srv.proc.returncode == 1, out
    assert "engine process %d ended unexpectedly" % pid in out and "stopping this server" in out


def test_the_engine_side_never_imports_the_web_framework():
    """What the engine process imports (service.engine_process and below) is free of Litestar and uvicorn."""
    import subprocess
    import sys

    code = ("import sys, service.engine_process, service.engine, service.scheduler, service.metrics; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'litestar', 'uvicorn', 'starlette', 'httpx'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
