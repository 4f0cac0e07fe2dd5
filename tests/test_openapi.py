"""The OpenAPI schema (GET /schema/openapi.json) documents every status code the service answers, each error
with the one error shape, and the limits of the app it describes; and the errors really have that shape."""
from __future__ import annotations

import time

import pytest
from litestar.testing import TestClient

from service import errors
from service.app import create_app, status_of
from service.settings import Settings

ERROR_STATUSES = {"/translate": {400, 401, 403, 413, 429, 500, 503, 504}, "/languages": {500},
                  "/health/live": {500}, "/health/ready": {500, 503}, "/v1/models": {500, 503},
                  "/metrics": {401, 403, 500}, "/detect": {400, 401, 403, 413, 429, 500},
                  "/translate_file": {400, 401, 403, 413, 429, 500, 503, 504}, "/download_file/{file_name}": {404, 500},
                  "/frontend/settings": {500}, "/suggest": {403, 500}, "/health": {500, 503}}


@pytest.fixture(scope="module")
def schema(model_dir) -> dict:
    settings = Settings(model_dir=model_dir, intra_threads=1, max_texts=5, max_text_chars=120, max_beam=6)
    return TestClient(create_app(settings)).get("/schema/openapi.json").json()   # no model needed for the schema


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_every_operation_documents_its_status_codes_with_the_error_schema(schema):
    body = schema["components"]["schemas"]["ErrorBody"]
    assert body["required"] == ["error", "type"]
    assert body["properties"]["error"]["type"] == body["properties"]["type"]["type"] == "string"
    ops = {(path, method): op for path, item in schema["paths"].items() for method, op in item.items()}
    assert {path for path, _ in ops} >= set(ERROR_STATUSES)
    for (path, method), op in ops.items():
        responses = op["responses"]
        assert "200" in responses, (path, method)
        assert {int(c) for c in responses} - {200} >= ERROR_STATUSES.get(path, {500}), (path, method)
        for code, response in responses.items():
            if code == "200":
                continue
            assert response["description"], (path, code)
            (media,) = response["content"]
            assert media == "application/json", (path, code)
            assert resolve(schema, response["content"][media]["schema"]) == body, (path, code)
            if code in ("429", "503"):
                assert response["headers"]["Retry-After"]["schema"]["type"] == "integer", (path, code)


def test_every_error_class_of_the_service_is_documented(schema):
    """A new error class, or a new status, must be added to the schema too (on /translate, but for the 404 of a
    translated file that is gone, which only GET /download_file answers)."""
    documented = {int(c) for c in schema["paths"]["/translate"]["post"]["responses"]} | \
        {int(c) for c in schema["paths"]["/download_file/{file_name}"]["get"]["responses"]}
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.TranslatorError)]
    nobody_reads = {status_of(errors.ClientClosedRequest(""))}    # 499: the client is gone, nobody receives it
    assert {status_of(c("")) for c in classes} - nobody_reads <= documented


def test_success_responses_say_what_they_are(schema):
    paths = schema["paths"]
    ok = paths["/translate"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert resolve(schema, ok)["title"] == "TranslateResponse"
    (metrics_media,) = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert metrics_media.startswith("text/plain")         # Prometheus text, not JSON


def test_request_schema_states_this_apps_limits(schema):
    props = resolve(schema, schema["paths"]["/translate"]["post"]["requestBody"]["content"]["application/json"]
                    ["schema"])["properties"]
    one, many = props["q"]["oneOf"]
    assert one == {"type": "string", "maxLength": 120}
    assert many["maxItems"] == 5 and many["items"] == {"type": "string", "maxLength": 120}
    assert props["source"]["enum"] == ["en", "auto"] and props["target"]["enum"] == ["pl"]
    assert props["format"]["enum"] == ["text", "html"] and "sentences" in props["format"]["description"]
    assert "several sentences" in props["q"]["description"]
    assert props["alternatives"]["maximum"] == 5 and props["alternatives"]["minimum"] == 0
    (beam,) = [v for v in props["beam_size"]["oneOf"] if v["type"] == "integer"]
    assert beam["minimum"] == 1 and beam["maximum"] == 6
    if "timeout" in props:          # msgspec's gt=0 reaches the schema (litestar drops falsy bounds)
        (timeout,) = [v for v in props["timeout"]["oneOf"] if v["type"] == "number"]
        assert timeout["exclusiveMinimum"] == 0


# -- the errors the service really answers have the documented shape ----------------------------------
def check_error(schema: dict, path: str, method: str, r) -> dict:
    assert str(r.status_code) in schema["paths"][path][method]["responses"], (path, r.status_code, r.text)
    body = r.json()
    assert set(body) >= {"error", "type"} and all(isinstance(body[k], str) and body[k] for k in ("error", "type"))
    assert set(body) == {"error", "type"} or path == "/health/ready"      # ready adds "status"
    if r.status_code in (429, 503):
        assert int(r.headers["Retry-After"]) >= 1
    return body


def test_real_errors_match_the_schema(schema, model_dir):
    settings = Settings(model_dir=model_dir, intra_threads=1, max_texts=2, max_text_chars=50, max_beam=3,
                        api_keys="good-key", rate_limit=4, metrics_token="scrape")
    key = {"X-API-Key": "good-key"}
    app = create_app(settings)
    cold = TestClient(app)           # the lifespan has not run: the model is not ready
    check_error(schema, "/translate", "post", cold.post("/translate", json={"q": "Hi."}, headers=key))
    check_error(schema, "/health/ready", "get", cold.get("/health/ready"))
    check_error(schema, "/v1/models", "get", cold.get("/v1/models"))
    with TestClient(create_app(settings)) as c:
        seen = {}
        for body, headers in [({"q": "Hi."}, {}),                                  # 401: no key
                              ({"q": "Hi."}, {"X-API-Key": "bad"}),               # 403
                              ({"q": "Hi.", "beam_size": 9}, key),                # 400: over max_beam
                              ({"q": "x" * 51}, key)]:                            # 413: over max_text_chars
            r = c.post("/translate", json=body, headers=headers)
            seen[r.status_code] = check_error(schema, "/translate", "post", r)
        r = c.post("/translate", json={"q": ["I see a cat."], "timeout": 1e-9}, headers=key)
        seen[r.status_code] = check_error(schema, "/translate", "post", r)       # 504: the deadline passed
        for _ in range(5):                                                        # 429: over 4 a minute
            r = c.post("/translate", json={"q": "Hi."}, headers=key)
        seen[r.status_code] = check_error(schema, "/translate", "post", r)
        assert {s: b["type"] for s, b in seen.items()} == {
            401: "unauthorized", 403: "forbidden", 400: "invalid_input", 413: "payload_too_large", 504: "timeout",
            429: "rate_limited"}
        check_error(schema, "/metrics", "get", c.get("/metrics"))
        check_error(schema, "/metrics", "get", c.get("/metrics", headers={"Authorization": "Bearer nope"}))
        r = c.request("DELETE", "/translate")
        assert r.status_code == 405 and r.headers["Allow"] and set(r.json()) == {"error", "type"}
        assert "DELETE" in r.json()["error"] and "POST" in r.json()["error"]
