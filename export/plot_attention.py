"""`python -m export plot-attention --model DIR "How are you?" ...`: attention heatmap PNGs for chosen sentences.

Decodes with the serving code (service.translator, the ONNX graphs of the model directory) and draws each
sentence's best hypothesis with service.heatmap.plot_attention, the same picture `translate --attention` draws.
Files are named attention-<sentence slug>.png in --out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "eng-pol"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sentences", nargs="*", help="English sentences (or use --file)")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="model directory written by `python -m export onnx` "
                   "(default: models/eng-pol)")
    p.add_argument("--file", help="a text file with one sentence per line (blank lines are skipped)")
    p.add_argument("--out", default=".", help="output directory (default: the current directory)")
    p.add_argument("--beam", type=int, default=3, help="beam width, 1 = greedy (default 3, the service's default)")


def targets(args: argparse.Namespace) -> list[str]:
    sentences = list(args.sentences)
    if args.file:
        sentences += Path(args.file).read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in sentences if s.strip()]


def run(args: argparse.Namespace) -> list[Path]:
    from service.errors import ModelLoadError
    from service.heatmap import MissingMatplotlib, attention_of, plot_attention, require_matplotlib, slug
    from service.translator import Translator

    try:
        sentences = targets(args)
    except OSError as e:
        sys.exit(f"plot-attention: cannot read {args.file}: {e.strerror}")
    if not sentences:
        sys.exit("plot-attention: no sentences: give them as arguments or with --file")
    if args.beam < 1:
        sys.exit("plot-attention: --beam must be at least 1")
    try:
        require_matplotlib()
        tr = Translator(args.model, provider="cpu")
    except (MissingMatplotlib, ModelLoadError) as e:
        sys.exit(f"plot-attention: {e}")
    results = tr.translate_batch(sentences, beam_size=args.beam, return_attention=True)
    written, seen = [], set()
    for i, (text, r) in enumerate(zip(sentences, results), 1):
        name = slug(text)
        if name in seen:
            name = f"{name}-{i}"
        seen.add(name)
        a = attention_of(r)
        path = plot_attention(a["source_tokens"], a["target_tokens"], a["weights"],
                              Path(args.out) / f"attention-{name}.png", title=f"{text} \u2192 {r.text}")
        print(f"{path}  {text} -> {r.text}")
        written.append(path)
    return written
