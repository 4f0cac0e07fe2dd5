"""`GET /`: the demo page (service/static/index.html), one self-contained file: its CSS and JavaScript are inline
and it loads nothing from anywhere else, so it works offline. The Content-Security-Policy sent with it allows
exactly that: its own inline script and style (by hash), and requests back to this service only.
"""
from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from litestar import Response, get
from litestar.enums import MediaType

PAGE = Path(__file__).resolve().parent / "static" / "index.html"


def _csp(html: str) -> str:
    def hashes(tag: str) -> str:
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
                        for body in re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S))
    return (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


_HTML = PAGE.read_text(encoding="utf-8")
HEADERS = {"Content-Security-Policy": _csp(_HTML), "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer"}
BODY = _HTML.encode("utf-8")


@get("/", include_in_schema=False, sync_to_thread=False)
def demo_page() -> Response[bytes]:
    return Response(BODY, media_type=MediaType.HTML, headers=HEADERS)
