"""LibreTranslate compatibility in-process: the three body types of every POST endpoint (service/bodies.py),
GET /frontend/settings, POST /suggest, GET /health, and what the OpenAPI schema says about them."""
from __future__ import annotations

import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.settings import Settings


@pytest.fixture(scope="module")
def settings(model_dir, tmp_path_factory) -> Settings:
    return Settings(model_dir=model_dir, provider="cpu", intra_threads=1, engine_process="off", max_texts=3,
                    max_text_chars=50, max_beam=4, files_dir=str(tmp_path_factory.mktemp("files")))


@pytest.fixture(scope="module")
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def as_form(body: dict) -> dict:
    """A JSON body's fields as a form sends them: text, lists as repeated fields."""
    return {k: v if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else str(v) for k, v in body.items()}


def multipart(body: dict) -> list:
    return [(k, (None, x)) for k, v in as_form(body).items() for x in (v if isinstance(v, list) else [v])]


def three_ways(client, path: str, body: dict):
    """The same request as JSON, urlencoded form and multipart form."""
    return (client.post(path, json=body), client.post(path, data=as_form(body)),
            client.post(path, files=multipart(body)))


@pytest.mark.parametrize("body", [
    {"q": "I see a cat.", "source": "en", "target": "pl"},
    {"q": ["I see a cat.", "Thank you."]},
    {"q": ["Where is the station?"]},                      # a one-element list stays a list as JSON...
    {"q": "We have the book too.", "alternatives": 2, "beam_size": 3},
    {"q": "Thank you.", "return_attention": True, "source": "auto"},
    {"q": "Thank you.", "timeout": 5.5, "format": "text"},
])
def test_translate_answers_the_same_for_json_form_and_multipart(client, body):
    js, form, mp = three_ways(client, "/translate", body)
    assert js.status_code == form.status_code == mp.status_code == 200
    want = js.json()
    if body["q"] == ["Where is the station?"]:            # ...while a field sent once is one text (as LibreTranslate)
        want = {k: v[0] for k, v in want.items()}
    assert form.json() == mp.json() == want


@pytest.mark.parametrize("body, status, words", [
    ({"source": "en"}, 400, "`q`"),
    ({"q": "Hi.", "target": "de"}, 400, "English to Polish"),
    ({"q": "Hi.", "beam_size": "three"}, 400, "beam_size"),
    ({"q": "Hi.", "beam_size": 9}, 400, "beam_size 9 exceeds the limit of 4"),
    ({"q": "Hi.", "alternatives": -1}, 400, "alternatives"),
    ({"q": "Hi.", "return_attention": "maybe"}, 400, "return_attention"),
    ({"q": "x" * 51}, 413, "51 characters"),
    ({"q": ["a", "b", "c", "d"]}, 413, "4 texts"),
    ({"q": "Hi.", "format": "xml"}, 400, "format"),
])
def test_errors_are_the_same_for_every_body_type(client, body, status, words):
    for r in three_ways(client, "/translate", body):
        assert r.status_code == status and words in r.json()["error"], (r.request.headers["content-type"], r.json())
        assert set(r.json()) == {"error", "type"}


def test_form_details(client):
    # booleans are true or false, numbers what their field says, empty values are values
    assert client.post("/translate", data={"q": "Thank you.", "return_attention": "True"}).status_code == 200
    for field, value in (("return_attention", "1"), ("return_attention", ""), ("beam_size", ""), ("beam_size", "2.5"),
                         ("target", "")):
        r = client.post("/translate", data={"q": "Thank you.", field: value})
        assert r.status_code == 400 and (field if field != "target" else "language pair") in r.json()["error"], \
            (field, value, r.json())
    # a JSON object sent with the form Content-Type (curl -d without -H) is read as JSON
    r = client.post("/translate", content=b'{"q": ["Thank you."]}',
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and isinstance(r.json()["translatedText"], list)
    # a file where a text belongs, or a field sent twice that is not a list: clear 400s
    r = client.post("/translate", files={"q": ("a.txt", b"Hi.")})
    assert r.status_code == 400 and "'q' is a file" in r.json()["error"]
    r = client.post("/translate", data={"q": "Hi.", "source": ["en", "en"]})
    assert r.status_code == 400 and "source" in r.json()["error"]
    r = client.post("/translate", content=b"q=Hi.&q", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200


def test_api_key_in_any_body_type(model_dir, tmp_path):
    settings = Settings(model_dir=model_dir, provider="cpu", intra_threads=1, engine_process="off", api_keys="k1",
                        files_dir=str(tmp_path))
    with TestClient(create_app(settings)) as c:
        for path in ("/translate", "/detect"):
            assert all(r.status_code == 401 for r in three_ways(c, path, {"q": "Thank you."}))
            assert all(r.status_code == 403 for r in three_ways(c, path, {"q": "Thank you.", "api_key": "k2"}))
            assert all(r.status_code == 200 for r in three_ways(c, path, {"q": "Thank you.", "api_key": "k1"}))
        s = c.get("/frontend/settings").json()
        assert s["apiKeys"] is True and s["keyRequired"] is True


def test_frontend_settings(client, settings):
    assert client.get("/frontend/settings").json() == {
        "charLimit": settings.max_text_chars, "frontendTimeout": 500, "apiKeys": False, "keyRequired": False,
        "suggestions": False, "filesTranslation": True, "supportedFilesFormat": [".txt", ".html", ".htm"],
        "language": {"source": {"code": "en", "name": "English"}, "target": {"code": "pl", "name": "Polish"}}}


def test_suggest_is_off_and_health(client):
    for r in three_ways(client, "/suggest", {"q": "Hi.", "s": "Cześć.", "source": "en", "target": "pl"}):
        assert r.status_code == 403 and "suggestions are disabled" in r.json()["error"]
    assert client.get("/health").json() == {"status": "ok"}


def test_health_before_the_model_is_ready(settings):
    r = TestClient(create_app(settings)).get("/health")     # no `with`: the lifespan has not run
    assert r.status_code == 503 and r.headers["Retry-After"] and r.json()["status"] == "not ready"


def test_openapi_documents_the_three_body_types(client):
    paths = client.get("/schema/openapi.json").json()["paths"]
    for path in ("/translate", "/detect"):
        content = paths[path]["post"]["requestBody"]["content"]
        assert set(content) == {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}
        json_schema = content["application/json"]["schema"]
        for media in ("application/x-www-form-urlencoded", "multipart/form-data"):   # the same, and a list in a
            first, forms = content[media]["schema"]["allOf"]                          # form has an item at least
            assert first == json_schema and forms["properties"]["q"]["oneOf"][1]["minItems"] == 1
    assert set(paths["/translate_file"]["post"]["requestBody"]["content"]) == {"multipart/form-data"}
    for path, method, codes in (("/detect", "post", {"200", "400", "401", "403", "413"}),
                                ("/translate_file", "post", {"200", "400", "413", "503", "504"}),
                                ("/download_file/{file_name}", "get", {"200", "404"}),
                                ("/frontend/settings", "get", {"200"}), ("/suggest", "post", {"403"}),
                                ("/health", "get", {"200", "503"})):
        assert codes <= set(paths[path][method]["responses"]), (path, paths[path][method]["responses"].keys())


def test_rate_limit_counts_detect_and_translate_file(model_dir, tmp_path):
    settings = Settings(model_dir=model_dir, provider="cpu", intra_threads=1, engine_process="off", rate_limit=2,
                        files_dir=str(tmp_path))
    with TestClient(create_app(settings)) as c:
        assert c.post("/detect", data={"q": "Hello there"}).status_code == 200
        assert c.post("/translate_file", files={"file": ("a.txt", b"Hi.")}).status_code == 200
        for r in (c.post("/detect", json={"q": "Hello there"}), c.post("/translate", data={"q": "Hi."})):
            assert r.status_code == 429 and r.json()["type"] == "rate_limited" and r.headers["Retry-After"]
        assert c.get("/frontend/settings").status_code == 200          # not counted
