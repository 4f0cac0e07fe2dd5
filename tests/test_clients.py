"""LibreTranslate's real clients against a real `python -m service` process, every method each one offers:
libretranslatepy 2.1.4 (LibreTranslate's own Python client: urllib, form bodies), libretranslate-aio (httpx, sync
and async: form and multipart bodies), and the npm package `libretranslate` (JSON bodies) run with node, installed
by npm into a folder this module creates. Where a method has no meaning here (another target language, a
suggestion), the test asserts the error the client shows its user.

node and npm: a missing one skips the npm test, unless TRANSLATOR_REQUIRE_TOOLS=1 (.ci/run), where it fails."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import urllib.error

import httpx
import pytest
from libretranslate_aio import AsyncLibreTranslate, BadRequestError, ForbiddenError, LibreTranslate, LibreTranslateError
from libretranslatepy import LibreTranslateAPI

from conftest import Server
from service.app import LANGUAGES

NPM_CLIENT = "libretranslate@1.0.1"
GERMAN = "Guten Morgen, wie geht es Ihnen heute?"
KEY = "client-test-key"


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    s = Server(model_dir, "--files-dir", str(tmp_path_factory.mktemp("files")), "--log-level", "warning").wait_ready()
    yield s
    output = s.stop()
    assert "Traceback" not in output, output[-5000:]


@pytest.fixture(scope="module")
def keyed(model_dir, tmp_path_factory):
    s = Server(model_dir, "--files-dir", str(tmp_path_factory.mktemp("files")), "--log-level", "warning",
               TRANSLATOR_API_KEYS=KEY).wait_ready()
    yield s
    s.stop()


def json_translation(server, q, **body):
    return httpx.post(server.url + "/translate", json={"q": q, **body}).json()


# -- libretranslatepy --------------------------------------------------------------------------------
def test_libretranslatepy(server):
    lt = LibreTranslateAPI(server.url)
    assert lt.languages() == LANGUAGES
    assert lt.translate("I see a cat.", "en", "pl") == json_translation(server, "I see a cat.")["translatedText"]
    assert lt.translate("Thank you.", "auto", "pl", timeout=30) == json_translation(server, "Thank you.")["translatedText"]
    detected = lt.detect(GERMAN)
    assert detected[0]["language"] == "de" and detected[0]["confidence"] > 80
    with pytest.raises(urllib.error.HTTPError) as e:       # the client's default target is Spanish
        lt.translate("I see a cat.")
    assert e.value.code == 400 and "English to Polish" in json.loads(e.value.read())["error"]
    with pytest.raises(urllib.error.HTTPError) as e:
        lt.translate(GERMAN, "auto", "pl")
    assert e.value.code == 400 and "'de'" in json.loads(e.value.read())["error"]


def test_libretranslatepy_with_api_keys(keyed):
    good, bad, none = (LibreTranslateAPI(keyed.url, api_key=k) for k in (KEY, "wrong", None))
    assert good.translate("I see a cat.", "en", "pl") == json_translation(keyed, "I see a cat.", api_key=KEY)[
        "translatedText"]
    assert good.detect(GERMAN)[0]["language"] == "de" and good.languages() == LANGUAGES
    for client, code in ((bad, 403), (none, 401)):
        for call in (lambda: client.translate("I see a cat.", "en", "pl"), lambda: client.detect(GERMAN)):
            with pytest.raises(urllib.error.HTTPError) as e:
                call()
            assert e.value.code == code and "API key" in json.loads(e.value.read())["error"]


# -- libretranslate-aio, sync and async --------------------------------------------------------------
def check_aio(server, lt, tmp_path, run):
    """Every method of libretranslate-aio's client (`run` awaits a call for the async one)."""
    assert [lang.code for lang in run(lt.languages())] == ["en", "pl"]
    assert run(lt.languages())[0].targets == ["pl"]
    t = run(lt.translate("I see a cat.", "en", "pl"))
    assert t.translated_text == json_translation(server, "I see a cat.")["translatedText"] and t.detected_language is None
    many = run(lt.translate(["I see a cat.", "Thank you."], "auto", "pl", alternatives=2))
    want = json_translation(server, ["I see a cat.", "Thank you."], alternatives=2)
    assert many.translated_text == want["translatedText"] and many.alternatives == want["alternatives"]
    assert [d.language for d in many.detected_language] == ["en", "en"]
    assert run(lt.translate("Thank you.", "auto", "pl")).detected_language.language == "en"
    html = run(lt.translate("<p>I see a cat.</p>", "en", "pl", format="html")).translated_text
    assert html == json_translation(server, "<p>I see a cat.</p>", format="html")["translatedText"]
    assert html.startswith("<p>") and html.endswith("</p>")
    for call, words in ((lambda: lt.translate("I see a cat.", "en", "de"), "English to Polish"),
                        (lambda: lt.translate(GERMAN, "auto", "pl"), "'de'")):
        with pytest.raises(BadRequestError, match=words) as e:
            run(call())
        assert e.value.status_code == 400
    (best, *_) = run(lt.detect(GERMAN))
    assert best.language == "de" and best.confidence > 80
    doc = tmp_path / "letter.txt"
    doc.write_text("I see a cat.\n\nThank you.\n", encoding="utf-8")
    url = run(lt.translate_file(doc, "en", "pl")).translated_file_url
    got = httpx.get(url)
    lines = [json_translation(server, s)["translatedText"] for s in ("I see a cat.", "Thank you.")]
    assert got.status_code == 200 and got.text == f"{lines[0]}\n\n{lines[1]}\n"
    assert 'filename="letter.txt"' in got.headers["content-disposition"]
    (tmp_path / "letter.pdf").write_bytes(b"%PDF-1.4")
    with pytest.raises(BadRequestError, match=r"supported: \.txt"):
        run(lt.translate_file(tmp_path / "letter.pdf", "en", "pl"))
    with pytest.raises(ForbiddenError, match="suggestions are disabled"):
        run(lt.suggest("I see a cat.", "Widzę kota.", "en", "pl"))
    settings = run(lt.frontend_settings())
    assert settings.char_limit == 1000 and settings.supported_files_format == [".txt", ".html", ".htm"]
    assert (settings.language.source.code, settings.language.target.code) == ("en", "pl")
    assert settings.suggestions is False and settings.frontend_timeout == 500
    assert run(lt.health()) is True


def test_libretranslate_aio_sync(server, tmp_path):
    with LibreTranslate(server.url) as lt:
        check_aio(server, lt, tmp_path, run=lambda result: result)


def test_libretranslate_aio_async(server, tmp_path):
    async def main():
        async with AsyncLibreTranslate(server.url) as lt:
            loop = asyncio.get_running_loop()
            # check_aio is synchronous: each awaited call runs in this loop from a worker thread
            await loop.run_in_executor(None, check_aio, server, lt, tmp_path,
                                       lambda coro: asyncio.run_coroutine_threadsafe(coro, loop).result(60))
    asyncio.run(main())


def test_libretranslate_aio_with_api_keys(keyed, tmp_path):
    (tmp_path / "a.txt").write_text("Thank you.\n")
    with LibreTranslate(keyed.url, api_key=KEY) as lt:
        assert lt.translate("Thank you.", "en", "pl").translated_text
        assert lt.detect(GERMAN)[0].language == "de"
        assert httpx.get(lt.translate_file(tmp_path / "a.txt", "en", "pl").translated_file_url).status_code == 200
        assert lt.frontend_settings().key_required is True
    with LibreTranslate(keyed.url, api_key="wrong") as lt, pytest.raises(ForbiddenError, match="API key is not valid"):
        lt.translate("Thank you.", "en", "pl")
    with LibreTranslate(keyed.url) as lt, pytest.raises(LibreTranslateError, match="needs an API key") as e:
        lt.detect(GERMAN)
    assert e.value.status_code == 401


# -- the npm package, with node --------------------------------------------------------------------
NODE_SCRIPT = r"""
const { translate } = require("libretranslate");
const apiurl = process.argv[2];
const attempt = async (args) => {
  try { const out = await translate({ apiurl, ...args }); return { value: out === undefined ? "(undefined)" : out }; }
  catch (e) { return { error: `${e.name}: ${e.message}` }; }
};
(async () => {
  console.log(JSON.stringify({
    en_pl: await attempt({ query: "I see a cat.", source: "en", target: "pl" }),
    default_source: await attempt({ query: "Thank you.", target: "pl" }),          // "auto" by default
    list: await attempt({ query: ["I see a cat.", "Thank you."], source: "en", target: "pl", format: "text" }),
    german_auto: await attempt({ query: process.argv[3], target: "pl" }),
    target_de: await attempt({ query: "I see a cat.", source: "en", target: "de" }),
    target_en: await attempt({ query: "I see a cat.", source: "en", target: "en" }),
  }));
})();
"""


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("TRANSLATOR_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{name} is not installed, and TRANSLATOR_REQUIRE_TOOLS=1 says the client tests must run")
        pytest.skip(f"{name} is not installed (apt-get install nodejs npm)")
    return path


@pytest.fixture(scope="module")
def npm_client(tmp_path_factory) -> str:
    node, npm = tool("node"), tool("npm")
    folder = tmp_path_factory.mktemp("npm-client")
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(folder), NPM_CLIENT],
                   check=True, capture_output=True, text=True, timeout=300)
    (folder / "run.js").write_text(NODE_SCRIPT)
    return node, folder


def test_npm_libretranslate(server, npm_client):
    node, folder = npm_client
    run = subprocess.run([node, str(folder / "run.js"), server.url, GERMAN], cwd=folder, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["en_pl"] == {"value": json_translation(server, "I see a cat.")["translatedText"]}
    assert out["default_source"] == {"value": json_translation(server, "Thank you.")["translatedText"]}
    assert out["list"] == {"value": json_translation(server, ["I see a cat.", "Thank you."])["translatedText"]}
    # another target: the client checks it against GET /languages and throws before asking to translate
    assert out["target_de"] == {"error": "TypeError: This language was not found/does not exist."}
    # what the client cannot show: it never looks at the status, so a 400 ("English to Polish only"; German with
    # source auto) comes back as `undefined` rather than an error; LibreTranslate's own 400s do the same with it
    assert out["target_en"] == out["german_auto"] == {"value": "(undefined)"}
    assert httpx.post(server.url + "/translate", json={"q": GERMAN, "source": "auto"}).status_code == 400
