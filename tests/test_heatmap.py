"""service/heatmap.py (attention as data and as a PNG) and `python -m export plot-attention`, on the tiny model."""
from __future__ import annotations

import pytest

from export.__main__ import main as export_main
from service.heatmap import attention_of, label, plot_attention, slug

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read(24)
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_attention_of_the_best_hypothesis(translator):
    (r,) = translator.translate_batch(["I see a cat."], beam_size=3, num_hypotheses=2, return_attention=True)
    a = attention_of(r)
    assert a["source_tokens"] == r.source_tokens and a["source_tokens"][-1] == "</s>"
    assert a["target_tokens"] == r.hypotheses[0].tokens + ["</s>"]
    assert a["weights"] == r.hypotheses[0].attention
    assert attention_of(r, r.hypotheses[1])["weights"] == r.hypotheses[1].attention
    assert len(a["weights"]) == len(a["target_tokens"]) and {len(w) for w in a["weights"]} == {len(r.source_tokens)}
    (blank,) = translator.translate_batch([" "], return_attention=True)
    assert attention_of(blank) == {"source_tokens": [], "target_tokens": [], "weights": []}


def test_labels_and_slugs():
    assert [label(t) for t in ["\u2581How", "?", "\u2581", "</s>"]] == ["How", "?", "\u2423", "</s>"]
    assert slug("How are you?") == "how-are-you" and slug("Zażółć gęślą!") == "za-g-l"
    assert slug("¿?") == "sentence" and len(slug("word " * 40)) <= 48


def test_plot_attention_sizes_with_the_matrix(tmp_path):
    small = plot_attention(["\u2581Hi", "</s>"], ["\u2581Cześć", "</s>"], [[0.9, 0.1], [0.2, 0.8]], tmp_path / "s.png",
                           title="Hi → Cześć")
    src = [f"\u2581w{i}" for i in range(20)]
    big = plot_attention(src, src[:12], [[1 / 20] * 20 for _ in range(12)], tmp_path / "deep" / "b.png")
    (sw, sh), (bw, bh) = png_size(small), png_size(big)
    assert bw > sw and bh > sh
    with pytest.raises(ValueError):
        plot_attention(["a", "b"], ["x"], [[0.5, 0.25, 0.25]], tmp_path / "bad.png")    # 1x3 is not 1x2


def test_export_plot_attention(model_dir, tmp_path, capsys):
    sentences = tmp_path / "s.txt"
    sentences.write_text("Thank you.\n\nI see a cat.\n", encoding="utf-8")
    out = tmp_path / "pics"
    assert export_main(["plot-attention", "--model", str(model_dir), "--out", str(out), "--beam", "1",
                        "--file", str(sentences), "Where is the station?", "Thank you."]) == 0
    names = sorted(p.name for p in out.iterdir())      # arguments first, then the file; a repeat gets its number
    assert names == ["attention-i-see-a-cat.png", "attention-thank-you-3.png", "attention-thank-you.png",
                     "attention-where-is-the-station.png"]
    assert all(png_size(out / n)[0] > 200 for n in names)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 4 and printed[0].startswith(str(out / "attention-where-is-the-station.png"))


def test_export_plot_attention_errors(model_dir, tmp_path):
    with pytest.raises(SystemExit, match="no sentences"):
        export_main(["plot-attention", "--model", str(model_dir), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="does not exist"):
        export_main(["plot-attention", "--model", str(tmp_path / "nope"), "Hi."])
