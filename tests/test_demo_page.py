"""The demo page (GET /) in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright) against a
real server process: typing, submitting, the Polish text, the alternatives, the attention heatmap (compared
with the API's own attention matrix), the narrow-screen layout, the keyboard, and the API's error messages.

Screenshots go to test-artifacts/. Without Chromium (or the playwright package) these tests skip, unless
TRANSLATOR_REQUIRE_BROWSER=1 (set by .ci/run), where they fail instead.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import REPO, SHIPPED_MODEL

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]


def _unavailable(reason: str) -> None:
    if os.environ.get("TRANSLATOR_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and TRANSLATOR_REQUIRE_BROWSER=1 says the browser tests must run "
                    "(.ci/run installs it: apt-get install chromium; pip install -e '.[dev]')")
    pytest.skip(f"{reason}: the demo page's browser tests need it (apt-get install chromium; "
                "pip install -e '.[dev]' for playwright)")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        _unavailable(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)   # never Playwright's own browser download
        yield b
        b.close()


class Watched:
    """A page plus everything it requested and every console error (a CSP violation is one)."""

    def __init__(self, browser, server_url: str, **context):
        self.ctx = browser.new_context(**context)
        self.page = self.ctx.new_page()
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        self.page.goto(server_url + "/")
        self.origin = urlsplit(server_url).netloc

    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests if urlsplit(u).netloc != self.origin and not u.startswith("data:")]


def api(url: str, **body) -> httpx.Response:
    return httpx.post(url + "/translate", json={"source": "en", "target": "pl", **body}, timeout=30)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000
    return path


def test_demo_page_translates_and_draws_the_attention(browser, start_server):
    server = start_server(SHIPPED_MODEL)
    w = Watched(browser, server.url, viewport={"width": 1100, "height": 900})
    page = w.page
    assert page.title() == "English → Polish translator"
    page.fill("#source", "How are you?")
    page.click("#translate")
    page.wait_for_selector("#heatmap[data-rows]", timeout=30_000)

    # the same request through the API: the page must show exactly what it answers
    expected = api(server.url, q="How are you?", alternatives=2, return_attention=True).json()
    assert page.inner_text("#translation") == expected["translatedText"]
    assert "się" in expected["translatedText"]                 # the shipped model's Polish, not an echo
    alts = page.locator("#alternatives li")
    assert alts.count() == len(expected["alternatives"]) == 2
    for i, (text, score) in enumerate(zip(expected["alternatives"], expected["alternative_scores"])):
        assert alts.nth(i).locator(".alt-text").inner_text() == text
        assert alts.nth(i).locator(".score").inner_text() == f"{score:.3f}"
    assert page.inner_text("#score") == f"score {expected['score']:.3f} ·"
    latency = page.inner_text("#latency")
    assert latency.endswith(" ms") and 0 < float(page.get_attribute("#latency", "data-ms")) < 30_000

    # the heatmap: one row per target token, one column per source token, one cell per weight, same values
    att = expected["attention"]
    rows, cols = len(att["weights"]), len(att["source_tokens"])
    assert (rows, cols) == (len(att["target_tokens"]), 5)           # ▁How ▁are ▁you ? </s>
    heat = page.locator("#heatmap")
    assert (int(heat.get_attribute("data-rows")), int(heat.get_attribute("data-cols"))) == (rows, cols)
    assert page.locator("#heatmap td.cell").count() == rows * cols
    assert page.locator("#heatmap thead th.src").all_inner_texts() == ["How", "are", "you", "?", "</s>"]
    assert page.locator("#heatmap tbody th").all_inner_texts() == \
        [t.removeprefix("\u2581") for t in att["target_tokens"]]
    shown = page.eval_on_selector_all("#heatmap td.cell", "cs => cs.map(c => [+c.dataset.row, +c.dataset.col, "
                                      "+c.dataset.weight, getComputedStyle(c).backgroundColor])")
    for r, c, weight, _ in shown:
        assert weight == pytest.approx(att["weights"][r][c], abs=1e-6)
    # the colour scale: the largest weight is drawn lighter (viridis: yellow) than the smallest (dark purple)
    lum = {(r, c): sum(int(x) for x in bg[bg.index("(") + 1:-1].split(",")) for r, c, _, bg in shown}
    hi = tuple(max(shown, key=lambda s: s[2])[:2])
    lo = tuple(min(shown, key=lambda s: s[2])[:2])
    assert lum[hi] > lum[lo] + 200
    assert page.is_visible("#legend-bar")

    assert w.console_errors == []                 # no CSP violation, no script error
    assert w.foreign_requests() == []             # self-contained: nothing from anywhere but this service
    shot = screenshot(page, "demo.png")
    assert shot.is_file()
    w.ctx.close()


def test_demo_page_keyboard_and_narrow_screen(browser, start_server):
    server = start_server(SHIPPED_MODEL)
    w = Watched(browser, server.url, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = w.page
    assert page.evaluate("document.activeElement.id") == "source"      # the text box has the focus at once
    long = "The weather is beautiful today, so let's go for a long walk in the park."
    page.keyboard.type(long)
    page.keyboard.press("Enter")                                        # Enter submits ...
    page.wait_for_selector("#heatmap[data-rows]", timeout=30_000)
    assert page.inner_text("#translation") == api(server.url, q=long).json()["translatedText"]
    assert page.input_value("#source") == long                          # ... without adding a newline
    # a 20-column heatmap is wider than the phone: it scrolls inside its own box, the page does not
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.eval_on_selector(".heatmap-wrap", "e => e.scrollWidth > e.clientWidth")

    page.fill("#source", "I love you.")
    page.focus("#source")
    page.keyboard.press("Control+Enter")                                # so does Ctrl+Enter
    page.wait_for_selector("#translation:text-is('Kocham cię.')", timeout=30_000)   # (the CSP forbids eval)
    page.focus("#source")
    page.keyboard.press("Shift+Enter")                                  # Shift+Enter is a new line
    assert page.input_value("#source") == "I love you.\n"

    # no horizontal overflow at 375 px: the page fits, the translation is inside the viewport, and only the
    # heatmap's own box may scroll sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    box = page.locator("#translation").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375
    button = page.locator("#translate").bounding_box()
    assert button["x"] >= 0 and button["x"] + button["width"] <= 375
    wrap = page.locator(".heatmap-wrap").bounding_box()
    assert wrap["x"] + wrap["width"] <= 375
    # Tab order reaches the controls: from the text box to beam, alternatives, the button
    page.focus("#source")
    order = []
    for _ in range(3):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id"))
    assert order == ["beam", "alt-count", "translate"]
    assert w.console_errors == [] and w.foreign_requests() == []
    screenshot(page, "demo-narrow.png")
    w.ctx.close()


def test_demo_page_shows_the_apis_errors(browser, start_server):
    server = start_server(SHIPPED_MODEL, "--max-text-chars", "50")
    w = Watched(browser, server.url, viewport={"width": 900, "height": 700})
    page = w.page
    long_text = "This sentence is a good deal longer than the fifty characters the server allows."
    expected = api(server.url, q=long_text, return_attention=True)
    assert expected.status_code == 413
    page.fill("#source", long_text)
    page.click("#translate")
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert page.inner_text("#error strong") == "Too long"
    assert page.inner_text("#error .message") == expected.json()["error"]        # the API's own words
    assert re.search(r"\b50\b", page.inner_text("#error .message"))            # it names the limit
    assert page.is_hidden("#result") and page.is_hidden("#attention")

    # a good request clears the message; then an overloaded service (503 + Retry-After, the API's shape) says so
    page.fill("#source", "Thank you.")
    page.click("#translate")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    assert page.is_hidden("#error")
    page.route("**/translate", lambda route: route.fulfill(
        status=503, headers={"Retry-After": "2", "Content-Type": "application/json"},
        body='{"error": "the queue is full (1024 sentences waiting, limit 1024); retry shortly", "type": "overloaded"}'))
    page.click("#translate")
    page.wait_for_selector("#error:not([hidden])", timeout=10_000)
    assert page.inner_text("#error strong") == "The service is overloaded"
    assert "the queue is full" in page.inner_text("#error") and "retry in 2 s" in page.inner_text("#error")
    assert page.is_hidden("#result") and page.is_hidden("#attention")   # no stale translation beside the error
    page.unroute("**/translate")

    page.fill("#source", "   ")                        # nothing to translate: said at once, no request sent
    before = len(w.requests)
    page.click("#translate")
    assert page.inner_text("#error strong") == "Nothing to translate" and len(w.requests) == before
    screenshot(page, "demo-error.png")
    w.ctx.close()


def test_demo_page_is_served_self_contained(start_server, model_dir):
    """No browser needed: GET / is HTML with a strict CSP, outside the OpenAPI schema, and names no other host."""
    server = start_server(model_dir)
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "unsafe-inline" not in csp
    assert "http://" not in r.text and "https://" not in r.text and "//cdn" not in r.text
    assert "/" not in httpx.get(server.url + "/schema/openapi.json").json()["paths"]


def test_readme_shows_the_demo_and_an_attention_heatmap():
    """The README's pictures: docs/demo.png is a screenshot this suite took (`cp test-artifacts/demo.png docs/`),
    docs/attention-how-are-you.png comes from `python -m export plot-attention` (command in the README)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in ("docs/demo.png", "docs/attention-how-are-you.png"):
        assert name in readme
        assert (REPO / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "python -m export plot-attention" in readme
