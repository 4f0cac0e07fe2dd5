"""Spans the model must not translate (numbers, URLs, e-mail addresses, rare names) swapped for placeholder
tokens before decoding and put back afterwards, as production MT systems do.

    protect("Call 555-0123 or see https://x.org", rare=...)  ->  ("Call ⟦0⟧ or see ⟦1⟧", ["555-0123", "https://x.org"])
    restore("Zadzwoń pod ⟦0⟧ lub zobacz ⟦1⟧", spans)      ->  "Zadzwoń pod 555-0123 lub zobacz https://x.org"

The placeholders ⟦0⟧ … ⟦9⟧ are user-defined symbols of both SentencePiece vocabularies (one piece each), so the
model learns during training to carry them to the right place in its output; the text inside never reaches
it. The same function marks the training pairs (a span is replaced only where it appears verbatim on both
sides) and the service's input, so the two cannot drift apart. Pure string code: no model, no torch.
"""
from __future__ import annotations

import re
from collections.abc import Callable

SLOTS = 10
SYMBOLS = [f"⟦{i}⟧" for i in range(SLOTS)]
_SYMBOL_AFTER_SPACE = re.compile(r"( ?)⟦(\d)⟧")
_FINAL_PUNCT = re.compile(r"[.!?…]+[\"'”’»)]*$")

# URL and e-mail first: they contain digits and capitals that must not be matched on their own.
_URL = r"(?:https?://|www\.)[^\s<>\"]+[^\s<>\".,;:!?)\]'’”]"
_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
# a word with a digit in it, with inner separators between such words: 1,000  3.5  12:30  2019-05-01  1/2,
# and codes and units written together with their digits (4x4  KV62  km2  A380  1990s  Covid-19), which the
# model would otherwise mistranslate digit by digit
_NUMBER = r"(?<![\w.,])(?:\w+-)*\w*\d\w*(?:[.,:/-]\w*\d\w*)*"
# a capitalised word, or a word with an inner capital (iPhone); tested for rarity separately
_NAME = r"\b[A-Z][\w'’-]*[\w]|\b[a-z]+[A-Z][\w]*"
_SPAN = re.compile(f"(?P<url>{_URL})|(?P<email>{_EMAIL})|(?P<num>{_NUMBER})|(?P<name>{_NAME})")


def find_spans(text: str, rare: Callable[[str], bool] | None = None) -> list[tuple[int, int]]:
    """(start, end) of each protectable span, left to right, at most SLOTS of them. Names are protected only
    when `rare(word)` says so and they do not start the sentence (where any word is capitalised)."""
    if "⟦" in text:                 # the text already holds our symbols: leave it alone rather than confuse them
        return []
    spans = []
    for m in _SPAN.finditer(text):
        if m.lastgroup == "name":
            if rare is None or not rare(m.group()) or not text[:m.start()].strip(" \"'“‘(") or \
                    re.search(r"[.!?:]\s*[\"'“‘(]*$", text[:m.start()]):
                continue
        spans.append((m.start(), m.end()))
        if len(spans) == SLOTS:
            break
    return spans


def protect(text: str, rare: Callable[[str], bool] | None = None) -> tuple[str, list[str]]:
    """-> (text with spans replaced by ⟦i⟧, the spans in slot order)."""
    spans = find_spans(text, rare)
    out, kept, last = [], [], 0
    for i, (a, b) in enumerate(spans):
        out += [text[last:a], SYMBOLS[i]]
        kept.append(text[a:b])
        last = b
    out.append(text[last:])
    return "".join(out), kept


def protect_pair(en: str, pl: str, rare: Callable[[str], bool] | None = None) -> tuple[str, str]:
    """A training pair with every span found in `en` that appears verbatim in `pl` replaced on both sides by
    the same placeholder (numbers written differently in Polish, e.g. 3.5 -> 3,5, stay as text)."""
    spans = [en[a:b] for a, b in find_spans(en, rare)]
    if "⟦" in pl:
        return en, pl
    slot = 0
    for s in dict.fromkeys(spans):                   # each distinct span once, in order of appearance
        pattern = re.compile(rf"(?<![\w]){re.escape(s)}(?![\w])")
        if pattern.search(pl):
            en = pattern.sub(SYMBOLS[slot], en, count=1)
            pl = pattern.sub(SYMBOLS[slot], pl, count=1)
            slot += 1
    return en, pl


def restore(text: str, spans: list[str]) -> str:
    """Puts each span back where the model placed its placeholder. A placeholder the model produced for a slot
    that does not exist is removed; a span the model dropped is added at the end (before the final punctuation),
    so nothing protected is ever lost."""
    used = set()

    def put(m: re.Match) -> str:
        i = int(m.group(2))
        if i < len(spans) and i not in used:
            used.add(i)
            return m.group(1) + spans[i]
        return ""                     # with the space before it, so "lat ⟦7⟧." becomes "lat."

    out = _SYMBOL_AFTER_SPACE.sub(put, text)
    missing = [s for i, s in enumerate(spans) if i not in used]
    if missing:                       # before the final punctuation, if the output has one
        out = out.rstrip()
        end = _FINAL_PUNCT.search(out)
        cut = end.start() if end else len(out)
        out = (out[:cut].rstrip() + " " + " ".join(missing)).strip() + out[cut:]
    return re.sub(r" {2,}", " ", out)


def rare_word(sp_src) -> Callable[[str], bool]:
    """The rule for 'rare': the source tokenizer splits the word (without a possessive 's) into three or more
    pieces, and its lower-case form is not one piece either. Frequent words and common names are one or two
    pieces of a vocabulary trained on the corpus; a capitalised common word ("Street") is one piece in lower case."""
    def rare(word: str) -> bool:
        word = re.sub(r"['’]s$", "", word)
        return len(sp_src.encode(word)) >= 3 and len(sp_src.encode(word.lower())) >= 2
    return rare
