"""`python -m service` as a real process: start, become ready, translate over HTTP, stop; fail fast on a bad start."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import onnxruntime as ort
import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "service", *args], cwd=REPO, text=True,
                            env={**os.environ, "TRANSLATOR_INTRA_THREADS": "1", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_ready(proc: subprocess.Popen, url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            if httpx.get(url + "/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"server not ready after {timeout}s:\n{proc.stdout.read()}")


def test_server_translates_over_http(model_dir):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve("--model-dir", str(model_dir), "--provider", "cpu", TRANSLATOR_PORT=str(port))   # env == flag
    try:
        wait_ready(proc, url)
        r = httpx.post(url + "/translate", json={"q": ["Thank you.", "I see a cat."], "alternatives": 1}, timeout=30)
        assert r.status_code == 200
        body = r.json()
        assert len(body["translatedText"]) == 2 and all(body["translatedText"])
        assert httpx.get(url + "/v1/models").json()["models"][0]["provider"] == "CPUExecutionProvider"
        assert 'translator_requests_total{status="200"} 1.0' in httpx.get(url + "/metrics").text
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode in (0, -signal.SIGTERM), out   # uvicorn re-raises the signal after a clean shutdown
    assert "Application shutdown complete" in out


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this machine has CUDA")
def test_cuda_without_cuda_fails_before_binding(model_dir):
    port = free_port()
    proc = serve("--model-dir", str(model_dir), "--provider", "cuda", "--port", str(port))
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0
    assert "CUDA" in out and "Traceback" not in out
    assert "Uvicorn running" not in out
    assert len(out.strip().splitlines()) == 1      # one clear line


def test_missing_model_dir_fails_with_one_line(tmp_path):
    proc = serve("--model-dir", str(tmp_path / "nowhere"), "--port", str(free_port()))
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1 and "does not exist" in out and len(out.strip().splitlines()) == 1
