"""Attention as data and as a picture: `attention_of(result)` (what the API returns) and `plot_attention(...)`,
the one heatmap drawing used by the command-line translator (`--attention DIR`) and by
`python -m export plot-attention`.

matplotlib is imported only when a picture is drawn: it is in the `export` extra, not in `serve`, so the service
never needs it. Without it, `plot_attention` raises MissingMatplotlib with the install command in its message.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from .translator import Hypothesis, TranslationResult

INSTALL_HINT = "pip install -e '.[export]'"


class MissingMatplotlib(ImportError):
    """Drawing heatmaps needs matplotlib, which only the `export` extra installs."""


def attention_of(result: TranslationResult, hyp: Hypothesis | None = None) -> dict[str, Any]:
    """{"source_tokens", "target_tokens", "weights"} of one hypothesis (default: the best one): one weight row per
    target token (plus "</s>" when the hypothesis ended with it), one column per source token (incl. "</s>")."""
    h = hyp if hyp is not None else result.hypotheses[0]
    weights = h.attention or []
    target = h.tokens + ["</s>"] if len(weights) == len(h.tokens) + 1 else list(h.tokens)
    return {"source_tokens": list(result.source_tokens) if weights else [], "target_tokens": target if weights else [],
            "weights": weights}


def label(piece: str) -> str:
    """A SentencePiece piece as a readable axis label: the word-start mark '▁' dropped ('▁' alone -> '␣')."""
    text = piece[1:] if piece.startswith("\u2581") else piece
    return text or "\u2423"


def slug(text: str, limit: int = 48) -> str:
    """'How are you?' -> 'how-are-you' (ASCII letters and digits only; 'sentence' when nothing is left)."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].rstrip("-")
    return s or "sentence"


def plot_attention(source_tokens: Sequence[str], target_tokens: Sequence[str], weights: Sequence[Sequence[float]],
                   path: str | Path, title: str | None = None) -> Path:
    """Writes a PNG heatmap: source tokens along the top (columns), target tokens down the side (rows), a colour
    bar from 0 to 1, and the weight printed in each cell when the matrix is small enough to read."""
    require_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    w = np.asarray(weights, dtype=float).reshape(len(target_tokens), len(source_tokens))
    rows, cols = w.shape
    fig, ax = plt.subplots(figsize=(min(2.2 + 0.62 * max(cols, 2), 18), min(1.6 + 0.5 * max(rows, 2), 18)),
                           dpi=110)
    try:
        im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(cols), [label(t) for t in source_tokens], rotation=50, ha="left", rotation_mode="anchor")
        ax.set_yticks(range(rows), [label(t) for t in target_tokens])
        ax.xaxis.tick_top()
        ax.xaxis.set_label_position("top")
        ax.set_xlabel("source (English)")
        ax.set_ylabel("target (Polish)")
        ax.set_xticks(np.arange(cols + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(rows + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=1)
        ax.tick_params(which="minor", length=0)
        if rows * cols <= 400:
            for i in range(rows):
                for j in range(cols):
                    ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if w[i, j] > 0.55 else "white")
        fig.colorbar(im, ax=ax, fraction=0.04, pad=0.03, label="attention weight")
        if title:
            ax.set_title(title, fontsize=10, pad=12, loc="left", y=-0.02 - 0.9 / max(rows, 2))
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def require_matplotlib() -> None:
    """Raises MissingMatplotlib (with the install command) unless heatmaps can be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingMatplotlib(f"attention heatmaps need matplotlib: {INSTALL_HINT}") from None
