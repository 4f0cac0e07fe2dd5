"""`python -m service` as a real process: start, become ready, translate over HTTP, stop; fail fast on a bad start."""
from __future__ import annotations

import signal

import httpx
import onnxruntime as ort
import pytest

from conftest import serve, wait_ready, free_port


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
