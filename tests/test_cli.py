"""The command-line translator (`python -m service.cli`, console script `translate`) on the tiny model: arguments,
stdin, files with a progress bar, --json, --alternatives, --attention PNGs, --url against a real server, errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import pytest

from conftest import REPO
from service import cli

TEXTS = ["I see a cat.", "Thank you.", "Where is the station?"]
PNG = b"\x89PNG\r\n\x1a\n"


def run_cli(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO, timeout=120, env={**os.environ, **env})


def png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read(24)
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture(scope="module")
def expected(translator):
    """What the synchronous core says, at the service's default beam (3) with two alternatives."""
    return {t: r for t, r in zip(TEXTS, translator.translate_batch(TEXTS, beam_size=3, num_hypotheses=3))}


def test_arguments_in_process(model_dir, expected, capsys):
    assert cli.main(["--model", str(model_dir), "--threads", "1", *TEXTS]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [expected[t].text for t in TEXTS]
    assert err == ""                                    # no progress bar for arguments


def test_stdin_line_by_line_keeps_blank_lines(model_dir, expected):
    r = run_cli("--model", str(model_dir), "--threads", "1", "--batch-size", "2",
                stdin=f"{TEXTS[0]}\n\n{TEXTS[1]}\n{TEXTS[2]}\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n") == [expected[TEXTS[0]].text, "", expected[TEXTS[1]].text, expected[TEXTS[2]].text, ""]


def test_a_line_of_several_sentences_translates_each(model_dir, expected, capsys):
    assert cli.main(["--model", str(model_dir), "--threads", "1", f"{TEXTS[0]}  {TEXTS[1]}"]) == 0
    assert capsys.readouterr().out == f"{expected[TEXTS[0]].text}  {expected[TEXTS[1]].text}\n"


def test_file_with_progress_bar_and_output_file(model_dir, expected, tmp_path):
    src, dst = tmp_path / "en.txt", tmp_path / "pl.txt"
    src.write_text("\n".join(TEXTS * 5) + "\n", encoding="utf-8")
    r = run_cli("--model", str(model_dir), "--threads", "1", "--input", str(src), "--output", str(dst),
                "--batch-size", "4", "--progress")
    assert r.returncode == 0, r.stderr
    assert dst.read_text(encoding="utf-8").splitlines() == [expected[t].text for t in TEXTS * 5]
    assert "15/15" in r.stderr and "100%" in r.stderr       # tqdm on stderr, with the file's line count as total
    assert r.stdout == ""


def test_json_lines_with_alternatives(model_dir, expected, capsys):
    assert cli.main(["--model", str(model_dir), "--threads", "1", "--json", "--alternatives", "2", *TEXTS]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["source"] for x in lines] == TEXTS
    for rec in lines:
        hyps = expected[rec["source"]].hypotheses
        assert rec["translation"] == hyps[0].text and rec["score"] == pytest.approx(hyps[0].score, abs=1e-4)
        assert [a["text"] for a in rec["alternatives"]] == [h.text for h in hyps[1:3]]
        assert [a["score"] for a in rec["alternatives"]] == [pytest.approx(h.score, abs=1e-4) for h in hyps[1:3]]
        assert rec["score"] >= rec["alternatives"][0]["score"] >= rec["alternatives"][1]["score"]
        assert "attention_png" not in rec


def test_plain_alternatives_are_tab_separated(model_dir, translator, capsys):
    assert cli.main(["--model", str(model_dir), "--threads", "1", "--alternatives", "1", "--beam", "4",
                     TEXTS[0]]) == 0
    (hyps,) = [r.hypotheses for r in translator.translate_batch([TEXTS[0]], beam_size=4, num_hypotheses=2)]
    assert capsys.readouterr().out == f"{hyps[0].text}\t{hyps[1].text}\n"


def test_attention_pngs(model_dir, tmp_path, capsys):
    out = tmp_path / "heat"
    assert cli.main(["--model", str(model_dir), "--threads", "1", "--json", "--attention", str(out),
                     TEXTS[0], "", TEXTS[2]]) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["attention_png"] for r in recs] == [str(out / "0001-i-see-a-cat.png"), None,
                                                  str(out / "0003-where-is-the-station.png")]
    assert sorted(p.name for p in out.iterdir()) == ["0001-i-see-a-cat.png", "0003-where-is-the-station.png"]
    w, h = png_size(out / "0003-where-is-the-station.png")
    assert w > 300 and h > 200


def test_attention_without_matplotlib_is_one_clear_line(model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # `import matplotlib` now raises ImportError
    assert cli.main(["--model", str(model_dir), "--attention", str(tmp_path / "h"), TEXTS[0]]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "pip install -e '.[export]'" in err
    assert not (tmp_path / "h").exists()


def test_model_load_error_is_one_line(tmp_path):
    r = run_cli("--model", str(tmp_path / "nope"), "Hello.")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "cannot load the model" in r.stderr and "does not exist" in r.stderr


def test_a_line_too_long_fails_alone(model_dir, expected):
    long = " ".join(["cat"] * 40)
    r = run_cli("--model", str(model_dir), "--threads", "1", stdin=f"{TEXTS[0]}\n{long}\n{TEXTS[1]}\n",
                TRANSLATOR_MAX_SOURCE_TOKENS="20")
    assert r.returncode == 1
    assert r.stdout.split("\n") == [expected[TEXTS[0]].text, "", expected[TEXTS[1]].text, ""]
    assert r.stderr.startswith("translate: line 2: ") and "limit of 20" in r.stderr and r.stderr.count("\n") == 1


def test_through_a_running_server(model_dir, start_server, expected, tmp_path):
    server = start_server(model_dir, "--max-text-chars", "60")
    r = run_cli("--url", server.url, "--batch-size", "2", stdin="\n".join(TEXTS) + "\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [expected[t].text for t in TEXTS]

    # JSON, alternatives and attention through the API; a text over the server's limit (413) fails alone
    long = "This line is much longer than the sixty characters this server accepts."
    r = run_cli("--url", server.url, "--json", "--alternatives", "2", "--attention", str(tmp_path / "h"),
                stdin=f"{TEXTS[0]}\n{long}\n{TEXTS[2]}\n")
    assert r.returncode == 1
    recs = [json.loads(x) for x in r.stdout.splitlines()]
    assert recs[1] == {"source": long, "error": recs[1]["error"]} and "60" in recs[1]["error"]
    assert "translate: line 2:" in r.stderr
    for rec in (recs[0], recs[2]):
        hyps = expected[rec["source"]].hypotheses
        assert rec["translation"] == hyps[0].text
        assert [a["text"] for a in rec["alternatives"]] == [h.text for h in hyps[1:3]]
        assert png_size(rec["attention_png"])[0] > 300


def test_unreachable_server_is_one_line():
    from conftest import free_port

    r = run_cli("--url", f"http://127.0.0.1:{free_port()}", "--retries", "0", "Hello.")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("translate: error: cannot reach the server") and r.stderr.count("\n") == 1


def test_bad_flags_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--beam", "0", "Hi."])
    assert e.value.code == 2 and "--beam" in capsys.readouterr().err


def test_console_script_is_declared():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["translate"] == "service.cli:main"
    assert any(d.startswith("tqdm") for d in meta["project"]["optional-dependencies"]["serve"])
