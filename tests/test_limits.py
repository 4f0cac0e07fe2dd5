"""Input limits are settings: over one, a 400/413 whose message names the limit and the value received; the
body limit is derived from (and checked against) the largest valid request."""
from __future__ import annotations

import json

import pytest
from litestar.testing import TestClient

from service.__main__ import main
from service.app import create_app
from service.settings import Settings, build_parser


@pytest.fixture(scope="module")
def settings(model_dir) -> Settings:
    # max_source_tokens 30 is below the warm-up sentence's count too, which must not stop the start
    return Settings(model_dir=model_dir, provider="cpu", intra_threads=1, max_texts=3, max_text_chars=40,
                    max_beam=4, max_source_tokens=30)


@pytest.fixture(scope="module")
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def error(r, status: int) -> str:
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error", "type"}
    return r.json()["error"]


def post_raw(client, body: bytes):
    return client.post("/translate", content=body, headers={"content-type": "application/json"})


def test_the_largest_valid_request_fits_the_body_limit(client, settings):
    # every text at max_text_chars, every character an astral one written as an escaped surrogate pair
    body = json.dumps({"q": ["😀" * settings.max_text_chars] * settings.max_texts, "source": "auto", "target": "pl",
                       "format": "text", "alternatives": 3, "beam_size": 4, "return_attention": False,
                       "api_key": "\U0001f511" * 256}, ensure_ascii=True, separators=(",", ":")).encode()
    assert len(body) <= settings.largest_request_bytes() < settings.body_limit()
    assert post_raw(client, body).status_code == 200
    # and whitespace around it, up to the limit, is still a valid request
    padded = body[:-1] + b" " * (settings.body_limit() - len(body)) + b"}"
    assert len(padded) == settings.body_limit() and post_raw(client, padded).status_code == 200
    over = padded[:-1] + b" }"
    message = error(post_raw(client, over), 413)
    assert f"{len(over)} bytes" in message and f"limit is {settings.body_limit()} bytes" in message


def test_each_limit_names_itself_and_the_value(client, settings, translator):
    m = error(client.post("/translate", json={"q": ["Hi."] * 4}), 413)
    assert "4 texts" in m and "limit of 3" in m and "TRANSLATOR_MAX_TEXTS" in m
    m = error(client.post("/translate", json={"q": ["Hi.", "y" * 41]}), 413)
    assert "text 1" in m and "41 characters" in m and "text limit of 40" in m and "TRANSLATOR_MAX_TEXT_CHARS" in m
    word = "a" * 35                                  # within 40 characters, one token per letter: over 30 tokens
    n = len(translator.encode_source(word))
    m = error(client.post("/translate", json={"q": word}), 413)
    assert n > 30 and f"{n} subword tokens" in m and "limit of 30" in m
    m = error(client.post("/translate", json={"q": "Hi.", "beam_size": 5}), 400)
    assert "beam_size 5" in m and "limit of 4" in m
    m = error(client.post("/translate", json={"q": "Hi.", "alternatives": 4}), 400)
    assert "alternatives 4" in m and "limit of 3" in m
    m = error(client.post("/translate", json={"q": "Hi.", "alternatives": 10 ** 30}), 400)   # beyond int64
    assert "alternatives" in m
    ok = client.post("/translate", json={"q": "I see a cat.", "alternatives": 3, "beam_size": 4.0})
    assert ok.status_code == 200 and len(ok.json()["alternatives"]) <= 3   # 4.0 is an integer in JSON


@pytest.mark.parametrize("field, value", [("beam_size", "3"), ("alternatives", "1"), ("return_attention", 1),
                                          ("return_attention", "true"), ("beam_size", 2.5), ("q", 5),
                                          ("q", ["ok", 5]), ("source", 1)])
def test_types_are_exactly_the_documented_ones(client, field, value):
    m = error(client.post("/translate", json={"q": "Hi.", field: value}), 400)
    assert m.startswith("invalid request") and field in m


def test_body_limit_is_derived_and_checked_at_start_up(capsys):
    s = Settings(max_texts=10, max_text_chars=100)
    assert s.max_body_bytes == 0 and s.body_limit() == max(s.largest_request_bytes() + 64 * 1024,
                                                           s.max_file_bytes + 16 * 1024)   # (a file upload)
    big = Settings(max_texts=64, max_text_chars=1000)
    assert big.body_limit() == big.largest_request_bytes() + 64 * 1024
    assert s.largest_request_bytes() >= 10 * 100 * 12
    assert Settings(max_texts=10, max_text_chars=100, max_body_bytes=10 ** 6).body_limit() == 10 ** 6
    with pytest.raises(ValueError, match=rf"max_body_bytes 5000 is smaller than the largest valid request "
                                         rf"\({s.largest_request_bytes()} bytes"):
        Settings(max_texts=10, max_text_chars=100, max_body_bytes=5000)
    with pytest.raises(ValueError, match="max_body_bytes must be >= 0"):
        Settings(max_body_bytes=-1)
    assert main(["--max-body-bytes", "1000"]) == 2            # refused before any model is loaded
    assert "max_body_bytes 1000 is smaller than the largest valid request" in capsys.readouterr().err
    env = {"TRANSLATOR_MAX_TEXT_CHARS": "100", "TRANSLATOR_MAX_BODY_BYTES": "200000"}
    assert Settings.from_env(env).body_limit() == 200000


def test_limits_are_documented_with_their_reasons():
    help_text = build_parser(Settings()).format_help()
    for flag in ("--max-text-chars", "--max-texts", "--max-source-tokens", "--max-beam", "--max-body-bytes"):
        assert flag in help_text
    assert "TRANSLATOR_MAX_BODY_BYTES" in help_text and "largest valid" in help_text
    defaults = Settings()
    assert defaults.body_limit() > defaults.largest_request_bytes()
    assert defaults.max_source_tokens >= 300          # a 1000-character English paragraph is ~260-300 tokens
