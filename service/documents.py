"""A request's texts as sentences for the engine, and the engine's sentence translations back as texts.

`prepare(text, format)` cuts one text of `q` into sentences (service.segment; for `format: "html"` each text node
of the document, service.html_text); the HTTP layer submits the sentences of all texts together, so every
sentence is its own sequence in the continuous batch; `combine(text, results)` puts one text back together.

A plain text of symbols only ("...", emoji) has no sentence by service.segment's rule; it goes to the model whole,
as every text did before, so that it is answered as before (blank texts too: "").

What a text of several sentences answers (a text of one sentence answers exactly what it always did):
  - translation: the sentences' best translations, in the original layout (whitespace, line breaks);
  - alternatives: rank by rank, as argos-translate (LibreTranslate's engine) combines its sentences' n-best:
    alternative j takes each sentence's hypothesis j+1, or its best where its beam found fewer (so there are as
    many alternatives as the sentence with the most has), less those that repeat the translation or an earlier
    alternative;
  - scores: the length-normalised log-probability of the whole text's chosen hypotheses (the service decodes
    with length penalty 1, so a sentence's log-probability is its score x (tokens + 1)): sum of log-probabilities
    over sum of lengths;
  - attention: one matrix for the text, block-diagonal: the sentences' source tokens side by side as columns,
    their target tokens one after another as rows, each row the attention of one target token over its own
    sentence's source tokens (zeros elsewhere; every row still sums to 1), with `sentences` giving each
    sentence's columns and rows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInput, TranslatorError
from .heatmap import attention_of
from .html_text import HtmlDocument
from .segment import Segmented, split
from .translator import Hypothesis, TranslationResult

FORMATS = ("text", "html")


@dataclass
class Text:
    """One text of q as sentences: its pieces (the whole text, or each text node of an HTML document)."""

    pieces: list[Segmented]
    html: HtmlDocument | None = None
    sentences: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.sentences = [s for p in self.pieces for s in p.sentences]

    def render(self, translations: list[str]) -> str:
        """The text with sentence i replaced by translations[i]. A blank plain text is "" (as it always was)."""
        if self.html is None and not self.pieces[0].text.strip():
            return ""
        it = iter(translations)
        pieces = [p.join([next(it) for _ in p.sentences]) for p in self.pieces]
        return self.html.render(pieces) if self.html is not None else pieces[0]


@dataclass
class TextResult:
    text: str
    alternatives: list[str]
    alternative_scores: list[float]
    score: float
    attention: dict[str, Any] | None = None


def prepare(text: str, format: str = "text") -> Text:
    if format == "html":
        doc = HtmlDocument(text)
        return Text([split(t) for t in doc.texts], doc)
    seg = split(text)
    if not seg.sentences and text.strip():   # only symbols ("...", emoji): the model sees it whole, as it always did
        core = text.strip()
        start = text.index(core)
        seg = Segmented([core], [text[:start], text[start + len(core):]])
    return Text([seg])


def prepare_all(texts: list[str], format: str = "text") -> list[Text]:
    """prepare() for each text of q; an HTML text that cannot be parsed is a 400 naming the text."""
    out = []
    for i, t in enumerate(texts):
        try:
            out.append(prepare(t, format))
        except InvalidInput as e:
            raise InvalidInput(f"text {i}: {e}") from None
    return out


def combine(text: Text, results: list[TranslationResult], attention: bool = False) -> TextResult:
    """One text's answer from its sentences' results (one per sentence, in order)."""
    ranks = max((len(r.hypotheses) for r in results), default=1)
    variants = [[r.hypotheses[j] if j < len(r.hypotheses) else r.hypotheses[0] for r in results]
                for j in range(ranks)]
    texts = [text.render([h.text for h in hyps]) for hyps in variants]
    scores = [_score(hyps) for hyps in variants]
    if len(results) > 1:                  # a combination that repeats an earlier one is left out
        seen: set[str] = set()
        keep = [j for j, t in enumerate(texts) if not (t in seen or seen.add(t))]
        texts, scores = [texts[j] for j in keep], [scores[j] for j in keep]
    out = TextResult(texts[0], texts[1:], scores[1:], scores[0])
    if attention:
        out.attention = _attention(results)
    return out


def combine_all(texts: list[Text], results: list[TranslationResult], attention: bool = False) -> list[TextResult]:
    """Each text's answer, from the results of all their sentences in order (one engine.submit for all)."""
    out, done = [], 0
    for t in texts:
        out.append(combine(t, results[done:done + len(t.sentences)], attention))
        done += len(t.sentences)
    return out


def _score(hyps: list[Hypothesis]) -> float:
    if len(hyps) == 1:
        return hyps[0].score
    lengths = [len(h.tokens) + 1 for h in hyps]
    return sum(h.score * n for h, n in zip(hyps, lengths)) / sum(lengths) if hyps else 0.0


def _attention(results: list[TranslationResult]) -> dict[str, Any]:
    parts = [attention_of(r) for r in results]
    if len(parts) == 1:
        return parts[0]
    width = sum(len(p["source_tokens"]) for p in parts)
    source, target, weights, spans = [], [], [], []
    for p in parts:
        left = len(source)
        right = width - left - len(p["source_tokens"])
        spans.append({"source_start": left, "source_end": left + len(p["source_tokens"]),
                      "target_start": len(target), "target_end": len(target) + len(p["target_tokens"])})
        source += p["source_tokens"]
        target += p["target_tokens"]
        weights += [[0.0] * left + row + [0.0] * right for row in p["weights"]]
    out = {"source_tokens": source, "target_tokens": target, "weights": weights}
    if parts:
        out["sentences"] = spans
    return out


_TEXT_INDEX = re.compile(r"^text (\d+) ")


def locate(texts: list[Text], error: TranslatorError) -> TranslatorError:
    """An error the engine raised about "text K" of the sentences it was given, reworded to name the text of q
    (and the sentence in it, when that text has several)."""
    m = _TEXT_INDEX.match(str(error))
    if m is None:
        return error
    k = int(m.group(1))
    for i, t in enumerate(texts):
        if k < len(t.sentences):
            where = f"text {i} " if len(t.sentences) == 1 else f"sentence {k + 1} of text {i} "
            return type(error)(where + str(error)[m.end():])
        k -= len(t.sentences)
    return error
