"""POST /translate_file and GET /download_file (service/files.py, service/libretranslate.py)."""
from __future__ import annotations

import os
import time

import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.errors import InvalidInput, PayloadTooLarge
from service.files import FileStore, download_name, format_of, split_html, split_txt
from service.settings import Settings


# -- splitting and joining a text file ---------------------------------------------------------------
def test_txt_keeps_layout_and_translates_sentence_by_sentence():
    data = "\ufeffHello.\n\n  How are you? I am fine.\r\n\t\nThank you.  \nNo newline at the end".encode()
    doc = split_txt(data, max_chars=100)
    assert doc.texts == ["Hello.", "How are you?", "I am fine.", "Thank you.", "No newline at the end"]
    assert doc.lines == [1, 3, 3, 5, 6]
    out = doc.join([t.upper() for t in doc.texts]).decode()
    assert out == "HELLO.\n\n  HOW ARE YOU? I AM FINE.\r\n\t\nTHANK YOU.  \nNO NEWLINE AT THE END"


def test_txt_cuts_sentences_as_translate_does():
    """The same segmenter as `q` on /translate: "U.S." and "Dr." do not end a sentence, a symbol-only line is
    kept as it is, and the gaps between sentences come back unchanged."""
    data = "I moved to the U.S. in 2010.  Dr. Smith met me there!\n* * *\nBye.".encode()
    doc = split_txt(data, max_chars=100)
    assert doc.texts == ["I moved to the U.S. in 2010.", "Dr. Smith met me there!", "Bye."]
    assert doc.lines == [1, 1, 3]
    assert doc.join(["A.", "B!", "C."]).decode() == "A.  B!\n* * *\nC."


def test_txt_errors():
    with pytest.raises(InvalidInput, match="not UTF-8"):
        split_txt(b"caf\xe9", 100)
    with pytest.raises(PayloadTooLarge, match="line 2 has a sentence of 12 characters.*10"):
        split_txt(b"Short.\nA long one!! Ok.", 10)
    assert split_txt(b"", 10).texts == [] and split_txt(b"", 10).join([]) == b""


def test_formats_and_download_names():
    assert format_of("notes.TXT") == ".txt"
    for name in ("report.pdf", "letter.docx", "noext", ""):
        with pytest.raises(InvalidInput, match="supported: .txt"):
            format_of(name)
    assert download_name("../../etc/my notes.txt", ".txt") == "my_notes.txt"
    assert download_name("C:\\Users\\x\\..\\ż.txt", ".txt") == "file.txt"
    assert download_name("..txt", ".txt") == "txt.txt" and download_name("...", ".txt") == "file.txt"


# -- the store -------------------------------------------------------------------------------------
def test_store_lifetime_and_names(tmp_path):
    store = FileStore(tmp_path, ttl_s=60, max_bytes=1000)
    name = store.put(b"abc", "a.txt")
    assert store.path(name).read_bytes() == b"abc" and name.endswith(".a.txt") and len(name.split(".")[0]) == 32
    for bad in ("../" + name, name.split(".")[0], "x" * 32 + ".a.txt", "/etc/passwd", name + "/..", ".." + name[2:]):
        assert store.path(bad) is None
    old = time.time() - 61
    os.utime(store.root / name, (old, old))          # past its lifetime: not served, and deleted
    assert store.path(name) is None and not (store.root / name).exists()


def test_store_total_size_is_bounded(tmp_path):
    store = FileStore(tmp_path, ttl_s=60, max_bytes=1000)
    names = []
    for i in range(5):
        names.append(store.put(bytes(400), f"{i}.txt"))
        os.utime(store.root / names[-1], (time.time() - 10 + i,) * 2)   # oldest first
    assert sum(f.stat().st_size for f in tmp_path.iterdir()) <= 1000
    assert [store.path(n) is not None for n in names] == [False, False, False, True, True]
    with pytest.raises(PayloadTooLarge, match="TRANSLATOR_FILES_MAX_BYTES"):
        store.put(bytes(1001), "big.txt")


# -- over HTTP ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(model_dir, tmp_path_factory):
    settings = Settings(model_dir=model_dir, provider="cpu", intra_threads=1, engine_process="off", max_texts=2,
                        max_text_chars=60, max_file_bytes=2000, files_dir=str(tmp_path_factory.mktemp("files")))
    with TestClient(create_app(settings)) as c:
        yield c


def upload(client, content: bytes, name="notes.txt", **fields):
    return client.post("/translate_file", files={"file": (name, content)}, data=fields)


def test_translate_file_and_download(client):
    lines = ["I see a cat.", "", "  Thank you. Where is the station?", "I have the book.", "Yes."]
    r = upload(client, "\n".join(lines).encode(), name="../../my notes.txt", source="en", target="pl")
    assert r.status_code == 200 and set(r.json()) == {"translatedFileUrl"}
    url = r.json()["translatedFileUrl"]
    assert url.startswith("http://testserver.local/download_file/") and url.endswith(".my_notes.txt")
    got = client.get(url.removeprefix("http://testserver.local"))
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/plain")
    assert 'filename="my_notes.txt"' in got.headers["content-disposition"]
    texts = ["I see a cat.", "Thank you.", "Where is the station?", "I have the book.", "Yes."]
    want = [client.post("/translate", json={"q": t}).json()["translatedText"] for t in texts]   # beam: default
    assert got.content.decode().split("\n") == [want[0], "", f"  {want[1]} {want[2]}", want[3], want[4]]


@pytest.mark.parametrize("kwargs, status, words", [
    (dict(content=b"x" * 2001), 413, "2001 bytes, which exceeds the limit of 2000"),
    (dict(content=b"Hi.", name="a.docx"), 400, "supported: .txt, .html"),
    (dict(content=b"Hi.", name="noextension"), 400, "supported: .txt"),
    (dict(content=b"\xff\xfeH\x00i\x00"), 400, "not UTF-8"),
    (dict(content=b"Hi.\n" + b"word " * 20), 413, "line 2"),
    (dict(content=b"Hi.", target="de"), 400, "English to Polish"),
    (dict(content="Guten Morgen, wie geht es Ihnen heute?".encode(), source="auto"), 400, "'de'"),
])
def test_translate_file_errors(client, kwargs, status, words):
    content = kwargs.pop("content")
    r = upload(client, content, **kwargs)
    assert r.status_code == status and words in r.json()["error"], r.json()


def test_translate_file_wants_a_multipart_upload(client):
    for r in (client.post("/translate_file", json={"file": "Hi."}), client.post("/translate_file", data={"file": "Hi."})):
        assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]
    for files in ({"other": ("a.txt", b"Hi.")}, {"file": (None, "Hi.")},
                  [("file", ("a.txt", b"Hi.")), ("file", ("b.txt", b"Yo."))]):
        r = client.post("/translate_file", files=files)
        assert r.status_code == 400 and "the field `file` must be one file upload" in r.json()["error"]


def test_download_of_unknown_or_crafted_names_is_404(client, tmp_path):
    for name in ("0" * 32 + ".a.txt", "..%2F..%2Fetc%2Fpasswd", "%2E%2E", "x.txt"):
        r = client.get(f"/download_file/{name}")
        assert r.status_code == 404 and r.json()["type"] in ("not_found", "http_error")


def test_translate_file_with_keys_and_limits_in_settings(model_dir, tmp_path):
    settings = Settings(model_dir=model_dir, provider="cpu", intra_threads=1, engine_process="off", api_keys="k1",
                        files_dir=str(tmp_path))
    with TestClient(create_app(settings)) as c:
        assert upload(c, b"Hi.").status_code == 401
        assert upload(c, b"Hi.", api_key="wrong").status_code == 403
        assert upload(c, b"Hi.", api_key="k1").status_code == 200
        assert c.post("/translate_file", files={"file": ("a.txt", b"Hi.")}, headers={"X-API-Key": "k1"}).status_code == 200
    with pytest.raises(ValueError, match="max_file_bytes"):
        Settings(max_body_bytes=900_000, max_file_bytes=1_000_000)
    assert Settings(max_texts=1, max_text_chars=10, max_file_bytes=500_000).body_limit() == 500_000 + 16 * 1024


def test_a_download_expires(model_dir, tmp_path):
    settings = Settings(model_dir=model_dir, provider="cpu", intra_threads=1, engine_process="off", files_ttl_s=60,
                        files_dir=str(tmp_path))
    with TestClient(create_app(settings)) as c:
        url = upload(c, b"Thank you.").json()["translatedFileUrl"].removeprefix("http://testserver.local")
        assert c.get(url).status_code == 200
        (stored,) = tmp_path.iterdir()
        os.utime(stored, (time.time() - 61,) * 2)              # a minute and a second later
        r = c.get(url)
        assert r.status_code == 404 and "TRANSLATOR_FILES_TTL_S" in r.json()["error"]
        assert list(tmp_path.iterdir()) == []                  # and it is gone from the disk


def test_the_store_folder_is_made_by_the_first_file(tmp_path):
    store = FileStore(tmp_path / "files", ttl_s=60, max_bytes=1000)
    store.sweep()
    assert store.path("0" * 32 + ".a.txt") is None and not (tmp_path / "files").exists()   # no folder litter
    assert store.path(store.put(b"x", "a.txt")).read_bytes() == b"x"


def test_html_file_keeps_its_markup_and_translates_text_nodes(client):
    page = b'<!DOCTYPE html><html><body><h1 title="Hello">Hello.</h1><script>var a = "I see a cat.";</script>' \
           b'<p>I see a cat. <b>Thank you.</b></p></body></html>'
    doc = split_html(page, 100)
    assert doc.texts == ["Hello.", "I see a cat.", "Thank you."]
    r = upload(client, page, name="page.html", source="en", target="pl")
    assert r.status_code == 200, r.json()
    got = client.get(r.json()["translatedFileUrl"].removeprefix("http://testserver.local")).content.decode()
    want = [client.post("/translate", json={"q": t}).json()["translatedText"] for t in doc.texts]
    assert got.replace('<!DOCTYPE html>\n', '<!DOCTYPE html>') == (f'<!DOCTYPE html><html><body><h1 title="Hello">{want[0]}</h1><script>var a = "I see a cat.";'
                   f'</script><p>{want[1]} <b>{want[2]}</b></p></body></html>')
