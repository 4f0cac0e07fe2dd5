"""The HTTP API in-process (litestar TestClient, lifespan included) on the tiny model from conftest."""
from __future__ import annotations

import re
import logging
import threading
import time

import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.settings import Settings
from service.translator import Translator

SENTENCES = ["I see a cat.", "Thank you.", "Where is the station?"]


@pytest.fixture(scope="module")
def settings(model_dir) -> Settings:
    return Settings(model_dir=model_dir, provider="cpu", intra_threads=1, max_texts=4, max_text_chars=200,
                    max_beam=4)


@pytest.fixture(scope="module")
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def metric(client, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", client.get("/metrics").text, re.M)
    return float(m.group(1)) if m else 0.0


def translate(client, **body):
    return client.post("/translate", json=body)


# -- endpoints ---------------------------------------------------------------------------------------
def test_health_languages_models_schema(client, model_dir):
    assert client.get("/health/live").json() == {"status": "alive"}
    assert client.get("/health/ready").status_code == 200
    assert client.get("/languages").json() == [{"code": "en", "name": "English", "targets": ["pl"]},
                                               {"code": "pl", "name": "Polish", "targets": []}]
    (m,) = client.get("/v1/models").json()["models"]
    assert m["name"] == model_dir.name and m["version"] == "test"
    assert m["architecture"] == "attention-seq2seq" and m["cell"] == "lstm"
    assert m["provider"] == "CPUExecutionProvider" and "bleu" in str(m["quality"]).lower()
    r = client.get("/schema/openapi.json")
    assert r.status_code == 200 and "/translate" in r.json()["paths"]
    assert client.get("/schema").status_code == 200


def test_not_ready_before_startup(settings):
    client = TestClient(create_app(settings))   # no `with`: the lifespan (model load) has not run
    r = client.get("/health/ready")
    assert r.status_code == 503 and "Retry-After" in r.headers


# -- POST /translate -----------------------------------------------------------------------------------
def test_string_and_list_shapes_mirror_q(client):
    one = translate(client, q=SENTENCES[0])
    assert one.status_code == 200
    assert isinstance(one.json()["translatedText"], str) and one.json()["translatedText"]
    many = translate(client, q=SENTENCES, source="auto", target="pl")
    assert many.status_code == 200
    texts = many.json()["translatedText"]
    assert isinstance(texts, list) and len(texts) == len(SENTENCES)
    assert texts[0] == one.json()["translatedText"]          # batched equals alone
    assert set(many.json()) == {"translatedText", "detectedLanguage"}   # source "auto": LibreTranslate's field
    assert [d["language"] for d in many.json()["detectedLanguage"]] == ["en"] * len(SENTENCES)
    assert set(one.json()) == {"translatedText"}


def test_empty_text(client):
    assert translate(client, q="").json() == {"translatedText": ""}
    assert translate(client, q=["", "  "]).json() == {"translatedText": ["", ""]}
    assert translate(client, q=[]).json() == {"translatedText": []}


def test_alternatives_and_beam(client):
    body = translate(client, q=SENTENCES[0], alternatives=2).json()
    assert len(body["alternatives"]) <= 2 and len(body["alternative_scores"]) == len(body["alternatives"])
    assert all(isinstance(a, str) for a in body["alternatives"])
    assert all(body["score"] >= s for s in body["alternative_scores"])   # best first
    beam = translate(client, q=SENTENCES[:2], beam_size=3, alternatives=1).json()
    assert len(beam["alternatives"]) == 2 and all(len(a) <= 1 for a in beam["alternatives"])
    assert len(beam["score"]) == 2
    plain_beam = translate(client, q=SENTENCES[0], beam_size=3).json()
    assert set(plain_beam) == {"translatedText"}


def test_beam_over_limit(client):
    r = translate(client, q="Hi.", alternatives=4)            # needs beam 5 > max_beam 4
    assert r.status_code == 400 and "4" in r.json()["error"] and "alternatives" in r.json()["error"]


def test_attention(client):
    body = translate(client, q=SENTENCES[2], return_attention=True).json()
    att = body["attention"]
    assert att["source_tokens"][-1] == "</s>"
    assert len(att["weights"]) == len(att["target_tokens"]) > 0
    for row in att["weights"]:
        assert len(row) == len(att["source_tokens"])
        assert sum(row) == pytest.approx(1.0, abs=1e-3)
    many = translate(client, q=[SENTENCES[0], ""], return_attention=True).json()
    assert len(many["attention"]) == 2 and many["attention"][1]["weights"] == []


def check_attention(att: dict, text: str, translation: str, translator: Translator, beam: int) -> None:
    """One Attention object: the source as the model tokenized it, the best hypothesis's tokens (plus </s>),
    one row per target token, one column per source token, every row a distribution; and the very weights the
    synchronous core computes for the best hypothesis at this beam."""
    src = [translator.sp_src.id_to_piece(i) for i in translator.encode_source(text)]
    assert att["source_tokens"] == src and src[-1] == "</s>"
    assert att["target_tokens"][-1] == "</s>"
    assert translator.sp_tgt.decode_pieces(att["target_tokens"][:-1]) == translation
    assert len(att["weights"]) == len(att["target_tokens"])
    for row in att["weights"]:
        assert len(row) == len(src)
        assert min(row) >= 0 and sum(row) == pytest.approx(1.0, abs=1e-4)
    (best, *_), = [r.hypotheses for r in translator.translate_batch([text], beam_size=beam, return_attention=True)]
    assert best.text == translation and att["target_tokens"] == best.tokens + ["</s>"]
    assert att["weights"] == [pytest.approx(row, abs=1e-4) for row in best.attention]


@pytest.mark.parametrize("beam, alternatives", [(1, 0), (3, 0), (3, 2)])
def test_attention_of_the_best_hypothesis(client, translator, beam, alternatives):
    """Greedy and beam search (with n-best too): the attention is the best hypothesis's, for a string q one
    object, for a list q a list in q's order."""
    one = translate(client, q=SENTENCES[2], beam_size=beam, alternatives=alternatives, return_attention=True).json()
    assert isinstance(one["attention"], dict)
    check_attention(one["attention"], SENTENCES[2], one["translatedText"], translator, beam)
    many = translate(client, q=SENTENCES, beam_size=beam, alternatives=alternatives, return_attention=True).json()
    assert isinstance(many["attention"], list) and len(many["attention"]) == len(SENTENCES)
    for att, text, out in zip(many["attention"], SENTENCES, many["translatedText"]):
        check_attention(att, text, out, translator, beam)
    assert "attention" not in translate(client, q=SENTENCES[2], beam_size=beam).json()   # only when asked


def test_attention_in_openapi_schema(client):
    schema = client.get("/schema/openapi.json").json()
    parts = schema["components"]["schemas"]
    req, resp, att = parts["TranslateRequest"], parts["TranslateResponse"], parts["Attention"]
    assert req["properties"]["return_attention"]["type"] == "boolean" and \
        "attention" in req["properties"]["return_attention"]["description"]
    field = resp["properties"]["attention"]
    assert {"$ref": "#/components/schemas/Attention"} in field["oneOf"]
    assert {"type": "array", "items": {"$ref": "#/components/schemas/Attention"}} in field["oneOf"]
    assert "list" in field["description"]
    assert sorted(att["required"]) == ["source_tokens", "target_tokens", "weights"]
    assert att["properties"]["weights"]["items"]["items"]["type"] == "number"
    assert "sum" in att["properties"]["weights"]["description"]
    for name in ("source_tokens", "target_tokens"):
        assert att["properties"][name]["items"]["type"] == "string" and att["properties"][name]["description"]


@pytest.mark.parametrize("body, word", [({"q": "Hi.", "source": "de"}, "English to Polish"),
                                        ({"q": "Hi.", "target": "fr"}, "English to Polish"),
                                        ({"q": "Hi.", "format": "markdown"}, "html")])
def test_unsupported_language_or_format(client, body, word):
    r = client.post("/translate", json=body)
    assert r.status_code == 400 and word in r.json()["error"]


@pytest.mark.parametrize("body", [b"{not json", b'{"q": 5}', b'{"text": "Hi."}', b'{"q": "Hi.", "beam_size": 0}',
                                  b'{"q": "Hi.", "alternatives": "two"}', b"[]"])
def test_bad_input_is_a_400_json_error(client, body):
    r = client.post("/translate", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] and "Traceback" not in r.text


def test_limits_name_limit_and_value(client):
    r = translate(client, q="x" * 201)
    assert r.status_code == 413 and "201" in r.json()["error"] and "200" in r.json()["error"]
    r = translate(client, q=["Hi."] * 5)
    assert r.status_code == 413 and "5 texts" in r.json()["error"] and "4" in r.json()["error"]


def test_status_200_not_201_and_unknown_route(client):
    assert translate(client, q="Hi.").status_code == 200
    r = client.get("/nope")
    assert r.status_code == 404 and "error" in r.json()


def test_metrics_incremented(client):
    ok = 'translator_requests_total{status="200"}'
    before = metric(client, ok), metric(client, "translator_request_duration_seconds_count")
    bad_before = metric(client, 'translator_requests_total{status="400"}')
    translate(client, q="Thank you.")
    translate(client, q="Hi.", source="xx")
    assert metric(client, ok) == before[0] + 1
    assert metric(client, "translator_request_duration_seconds_count") == before[1] + 2
    assert metric(client, 'translator_requests_total{status="400"}') == bad_before + 1
    client.get("/languages")
    text = client.get("/metrics").text
    for name in ("translator_queue_duration_seconds_bucket", 'translator_inference_duration_seconds_count{stage="decode"}',
                 "translator_batch_size_bucket", "translator_generated_tokens_bucket", "translator_input_tokens_bucket",
                 "translator_queue_size", "translator_active_sequences", "litestar_request_duration_seconds_bucket"):
        assert name in text, name
    # litestar_* count the other routes; /translate (mostly answered before Litestar) only in translator_*
    assert 'path="/languages"' in text and 'path="/translate"' not in text


# -- the engine behind the API: overload, batching, isolated failures -----------------------------------
class GatedTranslator(Translator):
    """The real translator, its decoder step behind a gate the test opens; it can fail one step on demand."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.gate, self.entered, self.fail_next, self.batches = threading.Event(), threading.Event(), False, []
        self.encoded = 0                                  # sentences through the encoder
        real_step, real_encode = self.runtime.step, self.runtime.encode

        def encode(src):
            out = real_encode(src)
            self.encoded += len(src)
            return out
        self.runtime.encode = encode

        def step(y, *rest):
            self.entered.set()
            self.gate.wait(30)
            self.batches.append(len(y))
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("simulated model failure")
            return real_step(y, *rest)
        self.runtime.step = step


def test_overload_batching_and_failure_isolation(model_dir):
    gated = GatedTranslator(model_dir, provider="cpu", intra_threads=1)
    gated.gate.set()
    app = create_app(Settings(model_dir=model_dir, max_queue=3, max_batch=8, intra_threads=1, default_beam=1),
                     translator=gated)
    with TestClient(app) as client:
        gated.gate.clear()
        gated.entered.clear()
        answers, threads = {}, []

        def send(key, q, queued_after):   # posts q in a thread, returns once `queued_after` sentences wait
            threads.append(threading.Thread(target=lambda: answers.update({key: client.post("/translate",
                                                                                            json={"q": q})})))
            threads[-1].start()
            deadline = time.time() + 10
            while app.state.engine.queued_sentences != queued_after and time.time() < deadline:
                time.sleep(0.01)
            assert app.state.engine.queued_sentences == queued_after

        send("first", "Thank you.", 0)
        assert gated.entered.wait(10)                                     # the engine is busy with it
        encoded = gated.encoded
        send("a", SENTENCES[:2], 2)
        send("b", "I see a cat.", 3)
        over = client.post("/translate", json={"q": "Hi."})              # queue holds 3 sentences: full
        assert over.status_code == 503 and over.headers["Retry-After"] and "queue" in over.json()["error"]
        deadline = time.time() + 10                                       # both encoded while the step waits
        while gated.encoded < encoded + 3 and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)                                                   # (and handed to the scheduler)
        gated.batches.clear()
        gated.gate.set()
        for t in threads:
            t.join(30)
        assert all(answers[k].status_code == 200 for k in ("first", "a", "b"))
        assert gated.batches[:2] == [1, 4]                                # newcomers joined the running batch
        alone = [client.post("/translate", json={"q": s}).json()["translatedText"] for s in SENTENCES[:2]]
        assert answers["a"].json()["translatedText"] == alone             # batched equals alone

        # one failing decoder step: it fails the request in that step only; one queued behind it succeeds
        answers.clear()
        threads.clear()
        gated.gate.clear()
        gated.entered.clear()
        gated.fail_next = True
        send("failing", "Thank you.", 0)
        assert gated.entered.wait(10)
        send("queued", "I see a cat.", 1)
        records: list[logging.LogRecord] = []
        catch = logging.Handler(logging.ERROR)
        catch.emit = records.append
        logging.getLogger("service.engine").addHandler(catch)   # (litestar's logging config stops propagation)
        try:
            gated.gate.set()
            for t in threads:
                t.join(30)
        finally:
            logging.getLogger("service.engine").removeHandler(catch)
        failed = answers["failing"]
        assert failed.status_code == 500 and failed.json()["type"] == "model_error"
        assert "Traceback" not in failed.text and "simulated" not in failed.text
        assert answers["queued"].status_code == 200 and answers["queued"].json()["translatedText"]
        logged = [logging.Formatter().format(r) for r in records if r.exc_info]   # a log line with the traceback
        assert logged and "Traceback" in logged[0] and "simulated model failure" in logged[0]
        assert client.post("/translate", json={"q": "Thank you."}).status_code == 200   # the engine lives on


def test_gru_model_serves_over_the_api(gru_model_dir):
    with TestClient(create_app(Settings(model_dir=gru_model_dir, intra_threads=1))) as client:
        r = client.post("/translate", json={"q": ["I see a cat.", "Thank you."]})
        assert r.status_code == 200 and all(r.json()["translatedText"])
        assert client.get("/v1/models").json()["models"][0]["cell"] == "gru"


def test_default_beam_applies_when_the_request_does_not_say(model_dir):
    with TestClient(create_app(Settings(model_dir=model_dir, intra_threads=1, default_beam=2))) as client:
        implicit = client.post("/translate", json={"q": "We have the book too.", "alternatives": 1}).json()
        explicit = client.post("/translate", json={"q": "We have the book too.", "alternatives": 1,
                                                   "beam_size": 2}).json()
        assert implicit == explicit and len(implicit["alternatives"]) == 1


@pytest.mark.parametrize("hold", ["on", "off"])
def test_early_retries_on_a_refused_connection_are_held_until_retry_after(model_dir, hold):
    """A client that ignores Retry-After (same connection: TestClient's address never changes) is held until that
    second has passed, then answered like any other request; its first refusal, and every refusal with the hold
    off, comes at once."""
    from prometheus_client import REGISTRY

    gated = GatedTranslator(model_dir, provider="cpu", intra_threads=1)
    gated.gate.set()
    app = create_app(Settings(model_dir=model_dir, max_queue=1, max_batch=8, intra_threads=1, default_beam=1,
                              hold_early_retries=hold), translator=gated)
    held = lambda: REGISTRY.get_sample_value("translator_held_requests_total") or 0.0   # noqa: E731
    with TestClient(app) as client:
        gated.gate.clear()
        gated.entered.clear()
        busy = [threading.Thread(target=lambda q=q: client.post("/translate", json={"q": q})) for q in SENTENCES[:2]]
        busy[0].start()                                        # one sentence decoding (stuck), one queued: full
        assert gated.entered.wait(10)
        busy[1].start()
        deadline = time.time() + 10
        while app.state.engine.queued_sentences < 1 and time.time() < deadline:
            time.sleep(0.01)
        before, times = held(), []
        for _ in range(3):
            t0 = time.perf_counter()
            r = client.post("/translate", json={"q": "Hi."})
            times.append(time.perf_counter() - t0)
            assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        gated.gate.set()
        for t in busy:
            t.join(30)
    assert times[0] < 0.5
    if hold == "on":
        assert all(t > 0.8 for t in times[1:]) and held() - before == 2, times
    else:
        assert all(t < 0.5 for t in times[1:]) and held() == before, times
