"""`POST /translate_file`'s two halves that know nothing of HTTP: splitting a document into the texts the model
translates and putting the translations back (`FORMATS`), and the store that keeps translated files for a while
(`FileStore`).

Supported formats: `.txt` (UTF-8; a BOM is dropped). HTML joins when the HTML text format exists. `.docx` and
`.odt` are not supported: python-docx (maintained) can only rewrite a paragraph's text as one run, which drops
the bold, italics and links inside it, or translate run by run, which cuts sentences apart; odfpy has had no
release since 2020. Other extensions are refused with a 400 that lists the supported ones.
"""
from __future__ import annotations

import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInput, PayloadTooLarge
from .segment import split


@dataclass
class Document:
    """A document cut into texts for the model: `texts[i]` is translated and put back by `join`."""

    texts: list[str]
    lines: list[int]                      # the 1-based line each text comes from (for error messages)
    join: Callable[[list[str]], bytes]    # the translated texts, in order -> the translated file


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"the file is not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None


def split_txt(data: bytes, max_chars: int) -> Document:
    """A text file: cut into sentences as `q` is on /translate (service/segment.py: every line break ends a
    sentence, sentencex finds the boundaries within a line), each translated as a text and put back between the
    original whitespace and line breaks. 413 if one sentence is longer than `max_chars`."""
    text = _decode(data)
    seg = split(text)
    lines, line, counted, pos = [], 1, 0, len(seg.gaps[0])   # line breaks in text[:counted] are in `line`
    for sentence, gap in zip(seg.sentences, seg.gaps[1:]):
        line, counted = line + text.count("\n", counted, pos), pos
        if len(sentence) > max_chars:
            raise PayloadTooLarge(f"line {line} has a sentence of {len(sentence)} characters, which exceeds the "
                                  f"text limit of {max_chars} (TRANSLATOR_MAX_TEXT_CHARS); split it")
        lines.append(line)
        pos += len(sentence) + len(gap)
    return Document(seg.sentences, lines, lambda translated: seg.join(translated).encode("utf-8"))


def split_html(data: bytes, max_chars: int) -> Document:
    """An HTML file: its text nodes cut into sentences and put back as `format: "html"` does on /translate
    (service/documents.py: tags, attributes, scripts and styles kept; the result well-formed)."""
    from .documents import prepare

    doc = prepare(_decode(data), "html")
    lines = []
    for i, sentence in enumerate(doc.sentences):
        if len(sentence) > max_chars:
            raise PayloadTooLarge(f"sentence {i + 1} of the file has {len(sentence)} characters, which exceeds the "
                                  f"text limit of {max_chars} (TRANSLATOR_MAX_TEXT_CHARS); split it")
        lines.append(i + 1)
    return Document(doc.sentences, lines, lambda translated: doc.render(translated).encode("utf-8"))


FORMATS: dict[str, Callable[[bytes, int], Document]] = {".txt": split_txt, ".html": split_html, ".htm": split_html}
"""Extension (lower case, with the dot) -> how to split a file of that kind; also what /frontend/settings lists."""


def format_of(filename: str) -> str:
    """The supported extension of an uploaded file's name, or a 400 that lists the supported ones."""
    ext = os.path.splitext(filename or "")[1].lower()
    if ext not in FORMATS:
        raise InvalidInput(f"file format {ext or '(none)'!r} is not supported; supported: {', '.join(FORMATS)} "
                           f"(the file name's extension decides)")
    return ext


_NAME = re.compile(r"[0-9a-f]{32}\.[A-Za-z0-9_.-]{1,120}")


def download_name(filename: str, ext: str) -> str:
    """A safe name for the translated file, from the uploaded one: its last path component, only letters, digits,
    '.', '_' and '-', at most 100 characters before the extension; nothing of it is used as a path."""
    stem = os.path.splitext(re.split(r"[\\/]", filename)[-1])[0]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._")[:100] or "file"
    return f"{stem}{ext}"


class FileStore:
    """Translated files waiting for their download, in one folder: each is kept `ttl_s` seconds, and all together
    at most `max_bytes` (the oldest are deleted first to make room). A file's name is a random 128-bit token plus
    the safe download name, so nobody can guess another user's file; `path` accepts only such names. Several
    worker processes can share the folder: the limits are enforced from what is on disk."""

    def __init__(self, root: Path, ttl_s: float, max_bytes: int):
        self.root, self.ttl_s, self.max_bytes = Path(root), ttl_s, max_bytes   # (made by the first put)

    @classmethod
    def for_settings(cls, settings) -> "FileStore":
        root = settings.files_dir or Path(tempfile.gettempdir()) / f"eng-pol-translator-files-{settings.port}"
        return cls(Path(root), settings.files_ttl_s, settings.files_max_bytes)

    def put(self, data: bytes, name: str) -> str:
        """Stores `data` under a new token; returns the stored name (the token, '.', `name`)."""
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"the translated file has {len(data)} bytes, more than the file store keeps "
                                  f"({self.max_bytes} bytes, TRANSLATOR_FILES_MAX_BYTES)")
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.sweep(room=len(data))
        stored = f"{secrets.token_hex(16)}.{name}"
        tmp = self.root / f".{stored}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.root / stored)       # whole or absent, for a download running at the same time
        return stored

    def path(self, stored: str) -> Path | None:
        """The file for a stored name, or None if the name is not one this store makes, or it expired."""
        if not _NAME.fullmatch(stored) or ".." in stored:
            return None
        path = self.root / stored
        try:
            if time.time() - path.stat().st_mtime > self.ttl_s:
                path.unlink(missing_ok=True)
                return None
        except OSError:
            return None
        return path

    def sweep(self, room: int = 0) -> None:
        """Deletes expired files, then the oldest until `room` more bytes fit within max_bytes."""
        if not self.root.is_dir():
            return
        now, files = time.time(), []
        for entry in os.scandir(self.root):
            try:
                st = entry.stat()
            except OSError:
                continue
            if now - st.st_mtime > self.ttl_s:
                Path(entry.path).unlink(missing_ok=True)
            elif entry.is_file():
                files.append((st.st_mtime, st.st_size, entry.path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total + room <= self.max_bytes:
                break
            Path(path).unlink(missing_ok=True)
            total -= size
