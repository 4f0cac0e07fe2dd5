"""Arbitrary Unicode over HTTP: emoji, right-to-left scripts, control and format characters, lone surrogates
in JSON, blank texts, very long words. Each gets a 200 with valid UTF-8 JSON or a clear 4xx, never a 500;
in-process (litestar TestClient) and, for raw bytes, against a real server process."""
from __future__ import annotations

import json

import httpx
import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.settings import Settings

TEXTS = {
    "emoji": "I see a cat 🐱😀!",
    "zwj emoji": "👨‍👩‍👧‍👦 Thank you.",
    "flags and skin tones": "🇵🇱🇬🇧 👍🏽",
    "arabic": "مرحبا بالعالم",
    "hebrew": "שלום עולם",
    "bidi mix": "I see שלום a cat مرحبا.",
    "rtl override": "\u202eI see a cat.\u202c",
    "nul": "Thank\x00 you.",
    "escape sequence": "\x1b[31mHelp me!\x1b[0m",
    "c1 controls": "\x85\x9bYes.",
    "zero-width inside": "Thank\u200byou.",
    "bom first": "\ufeffHow are you?",
    "combining marks": "Cafe\u0301 e\u0301e\u0301 a\u0308",
    "nfkc expands": "\ufdfa \u2163 ﬁ",
    "private use and noncharacters": "\ue000 \uffff \ufffe \U0010fffd",
    "astral math letters": "𝕋𝕙𝕒𝕟𝕜 𝕪𝕠𝕦",
    "cjk": "我看见一只猫。",
    "tabs and newlines": "Thank\tyou.\r\nWhere is\nthe station?",
    "line and paragraph separators": "Yes.\u2028No.\u2029",
    "replacement character": "Thank \ufffd\ufffd you.",
    "long word within the token limit": "a" * 300,
}
BLANK = {"empty": "", "spaces": "   ", "tabs and newlines": "\t\n\r\n", "unicode spaces": "\u00a0\u3000\u2003",
         "zero-width only": "\u200b\ufeff\u200b", "separators only": "\u2028\u2029\x1c\x1d"}


@pytest.fixture(scope="module")
def settings(model_dir) -> Settings:
    return Settings(model_dir=model_dir, provider="cpu", intra_threads=1, max_texts=32, max_text_chars=1000)


@pytest.fixture(scope="module")
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def post_raw(client, body: bytes):
    return client.post("/translate", content=body, headers={"content-type": "application/json"})


def ok_json(r) -> dict:
    """A 200 whose body is strict UTF-8 JSON."""
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return json.loads(r.content.decode("utf-8", errors="strict"))


def bad(r, status: int, *words: str) -> str:
    assert r.status_code == status, r.text
    body = json.loads(r.content.decode("utf-8", errors="strict"))
    assert set(body) == {"error", "type"} and "Traceback" not in body["error"]
    for w in words:
        assert w in body["error"], (w, body["error"])
    return body["error"]


@pytest.mark.parametrize("name", TEXTS)
def test_any_text_gets_a_translation(client, name):
    out = ok_json(client.post("/translate", json={"q": TEXTS[name], "return_attention": True}))
    assert isinstance(out["translatedText"], str)
    att = out["attention"]
    assert len(att["weights"]) == len(att["target_tokens"]) and att["source_tokens"][-1] == "</s>"


@pytest.mark.parametrize("name", BLANK)
def test_blank_texts_translate_to_empty(client, name):
    assert ok_json(client.post("/translate", json={"q": BLANK[name]})) == {"translatedText": ""}


def test_a_mixed_list_equals_its_texts_one_by_one(client):
    texts = list(TEXTS.values()) + list(BLANK.values())
    body = {"q": texts, "beam_size": 1}
    together = ok_json(client.post("/translate", json=body))["translatedText"]
    alone = [ok_json(client.post("/translate", json={"q": t, "beam_size": 1}))["translatedText"] for t in texts]
    assert together == alone


def test_sent_as_ascii_escapes_or_as_raw_utf8_the_same(client):
    q = "I see a cat 🐱 שלום مرحبا \x00\x1b"
    escaped = json.dumps({"q": q, "beam_size": 1}, ensure_ascii=True).encode()
    raw = json.dumps({"q": q, "beam_size": 1}, ensure_ascii=False).encode("utf-8")
    assert b"\\ud83d\\udc31" in escaped and "🐱".encode() in raw
    assert ok_json(post_raw(client, escaped)) == ok_json(post_raw(client, raw))


@pytest.mark.parametrize("body", [b'{"q": "\\ud800"}', b'{"q": "a\\ud800b"}', b'{"q": "\\udc00"}',
                                  b'{"q": "a\\udfffb"}', b'{"q": ["Hi.", "\\ud83d"]}', b'{"q": "\\ude00\\ud83d"}'])
def test_lone_surrogate_escapes_are_a_clear_400(client, body):
    bad(post_raw(client, body), 400, "invalid request", "surrogate")


def test_a_surrogate_pair_is_one_character(client):
    assert ok_json(post_raw(client, b'{"q": "I see a cat \\ud83d\\ude00"}'))["translatedText"]
    r = post_raw(client, b'{"q": "' + b"\\ud83d\\ude00" * 1000 + b'"}')     # 1000 characters, not 2000
    assert ok_json(r)


@pytest.mark.parametrize("body", [b'{"q": "\xff\xfe"}', b'{"q": "caf\xe9"}', b'\xff', b'{"q": "\xed\xa0\x80"}',
                                  b'{"q": "\xc0\xaf"}'])
def test_bytes_that_are_not_utf8_are_a_clear_400(client, body):
    bad(post_raw(client, body), 400, "invalid request")


def test_raw_control_characters_inside_a_json_string_are_a_clear_400(client):
    bad(post_raw(client, b'{"q": "Thank\x00you"}'), 400, "invalid request")     # JSON wants them escaped
    assert ok_json(post_raw(client, b'{"q": "Thank\\u0000you"}'))


def test_a_very_long_word_is_over_the_token_limit_not_a_crash(client, settings, translator):
    word = "a" * 1000                               # within 1000 characters, but one subword token per letter
    n = len(translator.encode_source(word))
    assert n > settings.max_source_tokens
    bad(client.post("/translate", json={"q": word}), 413, f"{n} subword tokens", str(settings.max_source_tokens))
    error = bad(client.post("/translate", json={"q": ["Hi.", "", word]}), 413, "text 2")
    assert str(settings.max_source_tokens) in error
    bad(client.post("/translate", json={"q": "a" * 1001}), 413, "1001", "1000")   # the character limit first


# -- a real server: raw bytes on the wire ---------------------------------------------------------------
def test_real_server_unicode_and_raw_bytes(model_dir, start_server):
    server = start_server(model_dir, "--max-texts", "8", "--max-text-chars", "1000")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        def post(body: bytes, **headers):
            return http.post("/translate", content=body, headers={"content-type": "application/json", **headers})

        out = ok_json(post(json.dumps({"q": list(TEXTS.values())[:8]}, ensure_ascii=False).encode()))
        assert len(out["translatedText"]) == 8
        assert ok_json(post(b'{"q": "\\ud83d\\ude00 \\u05e9\\u05dc\\u05d5\\u05dd"}'))
        assert ok_json(post(json.dumps({"q": list(BLANK.values())}).encode())) == {"translatedText": [""] * 6}
        bad(post(b'{"q": "\\ud800"}'), 400, "surrogate")
        bad(post(b'{"q": "\xff\xfe"}'), 400, "UTF-8")
        bad(post(b'{"q": "Thank\x00you"}'), 400, "invalid request")
        bad(post(b'{"q": "' + b"a" * 1000 + b'"}'), 413, "subword tokens")
        bad(post(b'{"q": ' + b'"x", ' * 9 + b'"x"}'), 400)                    # not JSON at all
        limit = Settings(max_texts=8, max_text_chars=1000).body_limit()
        too_big = b'{"q": "Hi."' + b" " * limit + b"}"
        bad(post(too_big), 413, str(limit), str(len(too_big)))               # names the limit and the size
        chunks = (too_big[i:i + 65536] for i in range(0, len(too_big), 65536))   # no Content-Length
        bad(http.post("/translate", content=chunks, headers={"content-type": "application/json"}), 413, str(limit))
        assert http.get("/health/live").status_code == 200                    # still serving
    output = server.stop()
    assert "Traceback" not in output and "unhandled error" not in output, output
