"""POST /translate has one path, Litestar's route, and it answers exactly as the two paths before it did.

Until the merge of issue 13 a hand-written ASGI fast path answered most requests in front of Litestar and handed
the rest to Litestar's route; this file compared the two. The comparisons are now the acceptance tests of the one
route: every error below is the answer both old paths gave (recorded from commit 647b2e5), every 200 is the
translation the model gives; a real server process is checked through raw sockets (chunked bodies, bodies in
pieces, clients that leave)."""
from __future__ import annotations

import json
import socket

import pytest
from litestar.testing import TestClient

import service.app as app_module
from service.app import create_app
from service.heatmap import attention_of
from service.settings import Settings

LONG = "word " * 60

REQUESTS = [
    {"q": "I see a cat."},
    {"q": ["Thank you.", "", "Where is the station?"]},
    {"q": "Thank you.", "beam_size": 2, "alternatives": 1},
    {"q": "I see a cat.", "return_attention": True, "beam_size": 1},
    {"q": ["I see a cat.", "Hi."], "return_attention": True},
    {"q": "Hi.", "beam_size": 2.0},                 # an integral float is an integer (as JSON Schema says)
    {"q": "Hi.", "beam_size": "2"},                 # strings are not numbers
    {"q": "Hi.", "return_attention": 0},
    {"q": "Hi.", "source": "xx"},
    {"q": "Hi.", "format": "xml"},                 # ("html" is a format since issue 12)
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
# what both old paths answered (status, error, type); every other body of REQUESTS was translated
ERRORS = {
    6: (400, "invalid request: Expected `int | null`, got `str` - at `$.beam_size`", "invalid_input"),
    7: (400, "invalid request: Expected `bool`, got `int` - at `$.return_attention`", "invalid_input"),
    8: (400, "unsupported language pair 'xx' -> 'pl': this service translates English to Polish only (source 'en' "
             "or 'auto', target 'pl'); see GET /languages", "invalid_input"),
    9: (400, "format 'xml' is not supported: only 'text' or 'html'", "invalid_input"),
    10: (400, "beam_size 99 exceeds the limit of 4 (TRANSLATOR_MAX_BEAM)", "invalid_input"),
    11: (400, "alternatives 9 exceeds the limit of 3 (the best translation and its alternatives come from one beam "
              "of at most 4)", "invalid_input"),
    12: (400, "invalid request: Expected `int` >= 1 (at 'beam_size')", "invalid_input"),
    14: (400, "invalid request: Expected `str | array`, got `int` (at 'q')", "invalid_input"),
    15: (413, "text 0 has 1200 characters, which exceeds the text limit of 200 (TRANSLATOR_MAX_TEXT_CHARS)",
         "payload_too_large"),
    16: (413, "q has 9 texts, which exceeds the limit of 4 texts per request (TRANSLATOR_MAX_TEXTS)",
         "payload_too_large"),
    17: (400, "invalid request: Expected `float` > 0.0 (at 'timeout')", "invalid_input"),
    19: (400, "invalid request: Object missing required field `q` (at 'data')", "invalid_input"),
    20: (400, "invalid request: Expected `object`, got `array` (at 'data')", "invalid_input"),
    21: (400, "invalid request: Expected `object`, got `str` (at 'data')", "invalid_input"),
}
TRUNCATED = ("invalid request: Input data was truncated: the JSON ends early, or a string holds a lone UTF-16 "
             "surrogate escape (\\ud800-\\udbff without its low half), which is not text")
RAW_BODIES = {
    b"": 'invalid request: the body is empty; send a JSON object such as {"q": "Hello"}',
    b"{": TRUNCATED,
    b"not json": "invalid request: JSON is malformed: invalid character (byte 4)",
    b'{"q": "\\ud800"}': TRUNCATED,
    b'{"q": "\xff\xfe"}': "invalid request: Invalid UTF-8 encoded string",
    b"null": "invalid request: Expected `object`, got `null` (at 'data')",
    b'{"q": "a"} trailing': "invalid request: JSON is malformed: trailing characters (byte 12)",
}


def settings_for(model_dir, **over) -> Settings:
    return Settings(model_dir=model_dir, provider="cpu", intra_threads=1, max_texts=4, max_text_chars=200,
                    max_beam=4, **over)


def answer(r) -> tuple:
    return r.status_code, r.json(), r.headers.get("content-type"), r.headers.get("retry-after")


@pytest.fixture(scope="module")
def client(model_dir):
    with TestClient(create_app(settings_for(model_dir))) as c:
        yield c


def expected_translation(translator, body: dict) -> dict:
    """The answer the model gives this body's texts (scores and weights compared to 1e-6)."""
    q = body["q"]
    texts = [q] if isinstance(q, str) else q
    beam, nbest = settings_for(translator.model_dir).beam_for(int(body.get("beam_size") or 0) or None, body.get("alternatives", 0))
    results = translator.translate_batch(texts, beam_size=beam, num_hypotheses=nbest,
                                         return_attention=body.get("return_attention", False))
    one = (lambda xs: xs[0]) if isinstance(q, str) else (lambda xs: xs)
    out = {"translatedText": one([r.text for r in results])}
    if body.get("alternatives"):
        out["alternatives"] = one([[h.text for h in r.hypotheses[1:]] for r in results])
        out["alternative_scores"] = one([[h.score for h in r.hypotheses[1:]] for r in results])
        out["score"] = one([r.hypotheses[0].score for r in results])
    if body.get("return_attention"):
        out["attention"] = one([attention_of(r) for r in results])
    return out


@pytest.mark.parametrize("i", range(len(REQUESTS)))
def test_the_route_answers_as_both_old_paths_did(client, translator, i):
    status, body, content_type, retry_after = answer(client.post("/translate", json=REQUESTS[i]))
    assert content_type == "application/json" and retry_after is None
    if i in ERRORS:
        assert (status, body["error"], body["type"]) == ERRORS[i]
    else:
        assert status == 200 and close(body, expected_translation(translator, REQUESTS[i])), body


def close(a, b) -> bool:
    """Equal, numbers to 1e-6 (the batch a sentence is decoded in may move a float's last bits)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-6 * max(1.0, abs(b))
    return a == b


@pytest.mark.parametrize("raw", RAW_BODIES)
def test_the_route_answers_raw_bodies_as_before(client, raw):
    status, body, content_type, _ = answer(client.post("/translate", content=raw,
                                                       headers={"content-type": "application/json"}))
    assert (status, body, content_type) == (400, {"error": RAW_BODIES[raw], "type": "invalid_input"},
                                            "application/json")


def test_one_route_answers_post_translate(client, monkeypatch):
    """Litestar routes POST /translate to one handler, `translate`; with its body decoding broken, every request
    fails (500), so nothing answers in front of it. Other methods get Litestar's 405, and a body over the limit
    Litestar's 413, as before."""
    (route,) = [r for r in client.app.routes if r.path == "/translate"]
    assert [h.handler_name for h in route.route_handlers if "POST" in h.http_methods] == ["translate"]

    def broken(body):
        raise RuntimeError("decoding broken")
    monkeypatch.setattr(app_module, "decode_body", broken)
    assert client.post("/translate", json={"q": "Hi."}).status_code == 500
    monkeypatch.undo()
    assert answer(client.get("/translate")) == (405, {"error": "GET is not allowed on /translate (allowed: POST, "
                                                               "OPTIONS)", "type": "http_error"}, "application/json", None)
    big = client.post("/translate", content=b'{"q": "' + b"a" * 2_000_000 + b'"}',
                      headers={"content-type": "application/json"})
    limit = client.app.state.settings.body_limit()     # (the largest upload to /translate_file, with these limits)
    assert answer(big) == (413, {"error": f"the request body has 2000009 bytes; the limit is {limit} bytes "
                                          "(TRANSLATOR_MAX_BODY_BYTES)", "type": "payload_too_large"},
                           "application/json", None)


def test_api_keys_and_metrics_on_the_route(model_dir):
    s = settings_for(model_dir, api_keys="k1,k2")
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


def test_not_ready_answers_503(model_dir):
    c = TestClient(create_app(settings_for(model_dir)))   # no lifespan: the model is not loaded
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
    """Chunked bodies and bodies that arrive in pieces answer like any other."""
    port = start_server(model_dir).port
    body = json.dumps({"q": "I see a cat.", "beam_size": 1}).encode()
    status, ok = _raw(port, b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert status == 200 and ok["translatedText"]
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    status, same = _raw(port, b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    assert status == 200 and same == ok
    # the body arrives in two packets: the route waits for all of it
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
