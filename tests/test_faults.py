"""Promises under load, faults and shutdown, each tested against a real `python -m service` process:
a bounded queue that refuses fast, deadlines (504), dropped sentences for clients that go away, a clean exit
on a bad model directory, graceful SIGTERM, several workers with one set of metrics."""
from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import SHIPPED_MODEL, free_port, serve

LONG = ("When I was young, my grandmother used to tell me long stories about the little village where she grew "
        "up, the river that ran behind her house and the people who lived there.")


def metric(url: str, name: str, **labels: str) -> float:
    """The value of one sample on /metrics (0 when absent)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def wait_for(predicate, timeout: float = 20, every: float = 0.05) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


@pytest.fixture(scope="module")
def reference():
    """Greedy translations of the shipped model, one sentence at a time in-process: the ground truth."""
    from service.translator import Translator

    tr = Translator(SHIPPED_MODEL, provider="cpu", intra_threads=1)
    texts = [f"I have {n} cats and {n + 1} dogs." for n in range(40)] + ["Thank you.", "Where is the station?"]
    return {t: tr.translate_batch([t], beam_size=1)[0].text for t in texts}


def test_flood_beyond_the_queue_gets_correct_answers_or_fast_refusals(start_server, reference):
    srv = start_server(SHIPPED_MODEL, "--max-queue", "8", "--max-batch", "8")
    texts = list(reference) * 5                                   # 210 requests at once

    async def flood():
        limits = httpx.Limits(max_connections=len(texts))
        async with httpx.AsyncClient(base_url=srv.url, limits=limits, timeout=60) as client:
            async def one(t):
                t0 = time.perf_counter()
                r = await client.post("/translate", json={"q": t, "beam_size": 1})
                return t, r, time.perf_counter() - t0
            return await asyncio.gather(*(one(t) for t in texts))

    results = asyncio.run(asyncio.wait_for(flood(), 120))          # none hangs
    ok = [(t, r) for t, r, _ in results if r.status_code == 200]
    refused = [(r, dt) for _, r, dt in results if r.status_code == 503]
    assert len(ok) + len(refused) == len(texts), {r.status_code for _, r, _ in results}
    assert ok and refused, (len(ok), len(refused))
    for t, r in ok:                                                # none gets a wrong answer
        assert r.json()["translatedText"] == reference[t]
    for r, _ in refused:                                           # an explicit refusal, with when to retry
        assert r.headers["Retry-After"] == "1" and "queue is full" in r.json()["error"]
    assert metric(srv.url, "translator_rejected_requests_total", reason="overloaded") == len(refused)
    slowest_refusal = max(dt for _, dt in refused)
    slowest_answer = max(dt for _, _, dt in results)
    print(f"{len(ok)} answered, {len(refused)} refused; slowest refusal {slowest_refusal:.2f} s, "
          f"slowest request {slowest_answer:.2f} s")
    # the service still answers at once afterwards
    r = httpx.post(srv.url + "/translate", json={"q": "Thank you.", "beam_size": 1}, timeout=10)
    assert r.status_code == 200 and r.json()["translatedText"] == reference["Thank you."]


def test_deadline_answers_504_and_frees_the_batch(start_server):
    srv = start_server(SHIPPED_MODEL, "--request-timeout-s", "30")
    r = httpx.post(srv.url + "/translate", json={"q": [LONG] * 32, "beam_size": 8, "timeout": 0.05}, timeout=30)
    assert r.status_code == 504 and r.json()["type"] == "timeout" and "0.05 s" in r.json()["error"]
    assert wait_for(lambda: metric(srv.url, "translator_active_sequences") == 0
                    and metric(srv.url, "translator_queue_size") == 0)
    assert metric(srv.url, "translator_rejected_requests_total", reason="timeout") == 1
    # a request's timeout can only lower the server's
    assert httpx.post(srv.url + "/translate", json={"q": "Thank you.", "timeout": 3000}, timeout=30).status_code == 200
    bad = httpx.post(srv.url + "/translate", json={"q": "Thank you.", "timeout": 0}, timeout=30)
    assert bad.status_code == 400 and "timeout" in bad.json()["error"]


def test_server_deadline_applies_without_a_request_timeout(start_server):
    srv = start_server(SHIPPED_MODEL, "--request-timeout-s", "0.05")
    r = httpx.post(srv.url + "/translate", json={"q": [LONG] * 32, "beam_size": 8}, timeout=30)
    assert r.status_code == 504


def test_disconnected_client_has_its_sentences_dropped(start_server):
    srv = start_server(SHIPPED_MODEL, "--max-batch", "8")
    body = json.dumps({"q": [LONG] * 64, "beam_size": 8}).encode()   # 512 rows through 8: many seconds
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.sendall(b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert wait_for(lambda: metric(srv.url, "translator_active_sequences") > 0)
    finished_before = metric(srv.url, "translator_generated_tokens_count")
    sock.close()                                                     # the client goes away
    assert wait_for(lambda: metric(srv.url, "translator_active_sequences") == 0
                    and metric(srv.url, "translator_queue_size") == 0, timeout=5)
    assert metric(srv.url, "translator_rejected_requests_total", reason="client_closed_request") == 1
    assert metric(srv.url, "translator_generated_tokens_count") - finished_before < 64   # not decoded to the end
    assert httpx.post(srv.url + "/translate", json={"q": "Thank you."}, timeout=30).status_code == 200


def _partial(d):
    (d / "decoder_step.onnx").unlink()


def _corrupt(d):
    p = d / "encoder.onnx"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])


def _mismatch_state(d):
    meta = json.loads((d / "model.json").read_text())
    meta["architecture"]["decoder_state_shape"][-1] += 1
    (d / "model.json").write_text(json.dumps(meta))


def _mismatch_vocab(d):
    meta = json.loads((d / "model.json").read_text())
    meta["vocab"]["target_size"] += 1
    (d / "model.json").write_text(json.dumps(meta))


def _garbage_json(d):
    (d / "model.json").write_text("{not json")


@pytest.mark.parametrize("damage", [_partial, _corrupt, _mismatch_state, _mismatch_vocab, _garbage_json])
def test_bad_model_directory_stops_before_binding(model_dir, tmp_path, damage):
    bad = tmp_path / "model"
    shutil.copytree(model_dir, bad)
    damage(bad)
    port = free_port()
    proc = serve("--model-dir", str(bad), "--port", str(port))
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m service: cannot load the model"), out
    assert "Traceback" not in out and "Uvicorn running" not in out


def test_sigterm_drains_then_exits_0(start_server):
    srv = start_server(SHIPPED_MODEL, "--max-batch", "8", "--shutdown-drain-s", "1.5", "--shutdown-grace-s", "30")
    answer = {}
    slow = threading.Thread(target=lambda: answer.update(r=httpx.post(
        srv.url + "/translate", json={"q": [LONG] * 8, "beam_size": 8}, timeout=60)))
    slow.start()
    assert wait_for(lambda: metric(srv.url, "translator_active_sequences") > 0)
    srv.proc.send_signal(signal.SIGTERM)
    assert wait_for(lambda: httpx.get(srv.url + "/health/ready", timeout=5).status_code == 503, timeout=5)
    refused = httpx.post(srv.url + "/translate", json={"q": "Thank you."}, timeout=10)
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    slow.join(60)
    assert answer["r"].status_code == 200 and len(answer["r"].json()["translatedText"]) == 8   # in flight: done
    srv.proc.wait(timeout=30)
    out = srv.stop()
    assert srv.proc.returncode == 0, out
    assert "SIGTERM" in out and "Application shutdown complete" in out


def test_workers_share_their_metrics_and_load_the_model_once_each(start_server, model_dir):
    srv = start_server(model_dir, "--workers", "2")
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        for i in range(20):
            assert client.post("/translate", json={"q": f"I see a cat {i}."}).status_code == 200
        # every scrape, whichever worker answers it, counts all 20
        for _ in range(6):
            assert metric(srv.url, "translator_requests_total", status="200") == 20
    out = srv.stop()
    ready = [ln for ln in out.splitlines() if " ready on " in ln]
    assert len(ready) == 2 and len({ln.rsplit("process", 1)[1] for ln in ready}) == 2, out


# -- who may use it ---------------------------------------------------------------------------------
def test_api_keys_rate_limit_metrics_token_cors(start_server, model_dir, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("# team keys\nfile-key\n")
    srv = start_server(model_dir, "--api-keys", "k1, k2", "--api-keys-file", str(keys), "--metrics-token", "m-tok",
                       "--rate-limit", "5")
    post = lambda **kw: httpx.post(srv.url + "/translate", timeout=30, **kw)   # noqa: E731
    scrape = lambda: httpx.get(srv.url + "/metrics", headers={"Authorization": "Bearer m-tok"}).text  # noqa: E731

    def model_calls() -> float:
        return next(s.value for f in text_string_to_metric_families(scrape()) for s in f.samples
                    if s.name == "translator_input_tokens_count")

    before = model_calls()
    none = post(json={"q": "Thank you."})
    assert none.status_code == 401 and none.json()["type"] == "unauthorized" and "API key" in none.json()["error"]
    wrong = post(json={"q": "Thank you."}, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 403 and wrong.json()["type"] == "forbidden"
    assert post(json={"q": "Thank you.", "api_key": "nope"}).status_code == 403
    assert model_calls() == before                                    # refused requests never reach the model
    assert post(json={"q": "Thank you."}, headers={"Authorization": "Bearer k1"}).status_code == 200
    assert post(json={"q": "Thank you."}, headers={"X-API-Key": "file-key"}).status_code == 200
    assert post(json={"q": "Thank you.", "api_key": "k2"}).status_code == 200      # LibreTranslate's way
    assert httpx.get(srv.url + "/health/live").status_code == 200                # health stays open
    assert httpx.get(srv.url + "/health/ready").status_code == 200

    # /metrics has its own token
    assert httpx.get(srv.url + "/metrics").status_code == 401
    assert httpx.get(srv.url + "/metrics", headers={"Authorization": "Bearer k1"}).status_code == 403
    assert "translator_requests_total" in scrape()

    # rate limit: 5 per minute per key; k1 has used 1
    statuses = [post(json={"q": "Thank you."}, headers={"Authorization": "Bearer k1"}).status_code for _ in range(5)]
    assert statuses == [200] * 4 + [429]
    limited = post(json={"q": "Thank you."}, headers={"Authorization": "Bearer k1"})
    assert limited.status_code == 429 and limited.json()["type"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60 and "per minute" in limited.json()["error"]
    assert post(json={"q": "Thank you."}, headers={"X-API-Key": "file-key"}).status_code == 200   # its own budget

    # CORS is off unless configured
    pre = httpx.options(srv.url + "/translate", headers={"Origin": "https://elsewhere.example",
                                                          "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers


def test_cors_when_configured(start_server, model_dir):
    srv = start_server(model_dir, "--cors-origins", "https://app.example")
    r = httpx.post(srv.url + "/translate", json={"q": "Thank you."}, headers={"Origin": "https://app.example"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
    other = httpx.post(srv.url + "/translate", json={"q": "Thank you."}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_errors_carry_no_internals(start_server, model_dir):
    srv = start_server(model_dir)
    for r in (httpx.post(srv.url + "/translate", content=b"{\"q\": [1, 2"),
              httpx.post(srv.url + "/translate", json={"q": "x" * 5000}),
              httpx.get(srv.url + "/nowhere"),
              httpx.delete(srv.url + "/translate")):
        assert 400 <= r.status_code < 500 and set(r.json()) == {"error", "type"}
        assert "Traceback" not in r.text and str(model_dir) not in r.text and "site-packages" not in r.text
