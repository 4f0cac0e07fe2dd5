"""POST /translate's fast path (service.app.TranslatorApp) answers exactly as Litestar's route does.

The same requests go to two apps on the tiny model, one with TRANSLATOR_FAST_PATH=on and one with off; status,
body and the headers a client relies on must match. A spy proves which path answered, and a real server
process is checked through raw sockets (chunked bodies, Content-Length lies, disconnects)."""
from __future__ import annotations

import json
import socket

import pytest
from litestar.testing import TestClient

import service.app as app_module
from service.app import create_app
from service.settings import Settings

LONG = "word " * 60

REQUESTS = [
    {"q": "I see a cat."},
    {"q": ["Thank you.", "", "Where is the station?"]},
    {"q": "Thank you.", "beam_size": 2, "alternatives": 1},
    {"q": "I see a cat.", "return_attention": True, "beam_size": 1},
    {"q": ["I see a cat.", "Hi."], "return_attention": True},
    {"q": "Hi.", "beam_size": 2.0},                 # an integral float is an integer (Litestar's route takes it)
    {"q": "Hi.", "beam_size": "2"},                 # strings are not numbers
    {"q": "Hi.", "return_attention": 0},
    {"q": "Hi.", "source": "xx"},
    {"q": "Hi.", "format": "html"},
    {"q": "Hi.", "beam_size": 99},
    {"q": "Hi.", "alternatives": 9},
    {"q": "Hi.", "beam_size": 0},
    {"q": "Hi.", "unknown_field": 1},
    {"q": 5},
    {"q": LONG * 4},                                # over max_text_chars: 413
    {"q": ["a"] * 9},                               # over max_texts: 413
    {"q": "Hi.", "timeout": -1},
    {"q": "Hi.", "timeout": 5},
    {},
    [],
    "just a string",
    {"q": "\u202eRTL \U0001F600 \x07 zero\u200bwidth"},
]
RAW_BODIES = [b"", b"{", b"not json", b'{"q": "\\ud800"}', b'{"q": "\xff\xfe"}', b"null", b'{"q": "a"} trailing']


def settings_for(model_dir, fast: str, **over) -> Settings:
    return Settings(model_dir=model_dir, provider="cpu", intra_threads=1, max_texts=4, max_text_chars=200,
                    max_beam=4, fast_path=fast, **over)


def answer(r) -> tuple:
    return r.status_code, r.json(), r.headers.get("content-type"), r.headers.get("retry-after")


@pytest.fixture(scope="module")
def both(model_dir):
    with TestClient(create_app(settings_for(model_dir, "on"))) as fast, \
            TestClient(create_app(settings_for(model_dir, "off"))) as slow:
        yield fast, slow


@pytest.mark.parametrize("body", REQUESTS, ids=range(len(REQUESTS)))
def test_same_answer_on_both_paths(both, body):
    fast, slow = both
    a, b = answer(fast.post("/translate", json=body)), answer(slow.post("/translate", json=body))
    assert a == b
    assert a[2] == "application/json"


@pytest.mark.parametrize("raw", RAW_BODIES)
def test_same_answer_for_raw_bodies(both, raw):
    fast, slow = both
    hdr = {"content-type": "application/json"}
    a = answer(fast.post("/translate", content=raw, headers=hdr))
    b = answer(slow.post("/translate", content=raw, headers=hdr))
    assert a == b and 400 <= a[0] < 500


def test_the_fast_path_is_the_one_answering(both, monkeypatch):
    """With the route's own parsing broken, the fast app still answers valid requests; the slow one cannot."""
    fast, slow = both

    def broken(body):
        raise RuntimeError("Litestar's route was used")
    monkeypatch.setattr(app_module, "_strict", broken)
    assert fast.post("/translate", json={"q": "Hi."}).status_code == 200
    assert slow.post("/translate", json={"q": "Hi."}).status_code == 500
    # what the fast path hands over (an integral float) still goes through the route
    assert fast.post("/translate", json={"q": "Hi.", "beam_size": 2.0}).status_code == 500


def test_api_keys_and_metrics_on_the_fast_path(model_dir):
    s = settings_for(model_dir, "on", api_keys="k1,k2")
    with TestClient(create_app(s)) as c:
        before = c.get("/metrics").text
        assert c.post("/translate", json={"q": "Hi."}).status_code == 401
        assert c.post("/translate", json={"q": "Hi."}, headers={"X-API-Key": "nope"}).status_code == 403
        assert c.post("/translate", json={"q": "Hi."}, headers={"Authorization": "Bearer k2"}).status_code == 200
        assert c.post("/translate", json={"q": "Hi.", "api_key": "k1"}).status_code == 200
        after = c.get("/metrics").text

    def value(text, name):
        line = next((ln for ln in text.splitlines() if ln.startswith(name + " ")), None)
        return float(line.split()[1]) if line else 0.0
    for name, added in (('translator_requests_total{status="200"}', 2), ('translator_requests_total{status="401"}', 1),
                        ('translator_requests_total{status="403"}', 1),
                        ('translator_rejected_requests_total{reason="unauthorized"}', 1),
                        ("translator_request_duration_seconds_count", 4)):
        assert value(after, name) == value(before, name) + added, name


def test_not_ready_answers_503_on_the_fast_path(model_dir):
    c = TestClient(create_app(settings_for(model_dir, "on")))   # no lifespan: the model is not loaded
    r = c.post("/translate", json={"q": "Hi."})
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and r.json()["type"] == "overloaded"


def _raw(port: int, request: bytes) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(body)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return int(v)
    return 0


def test_real_server_chunked_and_split_bodies(start_server, model_dir):
    """Bodies the fast path hands to Litestar (chunked) or reads in pieces answer like any other."""
    port = start_server(model_dir).port
    body = json.dumps({"q": "I see a cat.", "beam_size": 1}).encode()
    status, ok = _raw(port, b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert status == 200 and ok["translatedText"]
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    status, same = _raw(port, b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    assert status == 200 and same == ok
    # the body arrives in two packets: the fast path waits for all of it
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:7])
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(1)
        s.settimeout(30)
        s.sendall(body[7:])
        assert b" 200 " in s.recv(65536).split(b"\r\n")[0]
    # a client that sends half a body and leaves costs nothing and breaks nothing
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"q\": ")
    status, again = _raw(port, b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert status == 200 and again == ok
