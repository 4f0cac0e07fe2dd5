"""A tiny real model, trained and exported by the project's own export code, once per test run."""
from __future__ import annotations

import argparse
import itertools
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = REPO / "models" / "eng-pol"

# A small hand-written corpus, expanded from templates: enough for a tiny model to learn something.
SUBJECTS = [("I", "Ja"), ("We", "My"), ("They", "Oni"), ("You", "Ty")]
VERBS = {  # English verb -> Polish form per subject
    "see": {"I": "widzę", "We": "widzimy", "They": "widzą", "You": "widzisz"},
    "like": {"I": "lubię", "We": "lubimy", "They": "lubią", "You": "lubisz"},
    "have": {"I": "mam", "We": "mamy", "They": "mają", "You": "masz"},
}
OBJECTS = [("a cat", "kota"), ("a dog", "psa"), ("the house", "dom"), ("the book", "książkę"),
           ("the car", "samochód"), ("a friend", "przyjaciela"), ("the tea", "herbatę")]
EXTRA = [("How are you?", "Jak się masz?"), ("Thank you.", "Dziękuję."), ("Good morning.", "Dzień dobry."),
         ("Where is the station?", "Gdzie jest dworzec?"), ("I don't know.", "Nie wiem."),
         ("It's raining.", "Pada deszcz."), ("Help me!", "Pomóż mi!"), ("Yes.", "Tak."), ("No.", "Nie.")]


def fixture_pairs() -> list[tuple[str, str]]:
    pairs = []
    for (en_s, pl_s), verb, (en_o, pl_o) in itertools.product(SUBJECTS, VERBS, OBJECTS):
        pairs.append((f"{en_s} {verb} {en_o}.", f"{pl_s} {VERBS[verb][en_s]} {pl_o}."))
        pairs.append((f"{en_s} {verb} {en_o} too.", f"{pl_s} też {VERBS[verb][en_s]} {pl_o}."))
    pairs += EXTRA * 6
    random.Random(0).shuffle(pairs)
    return pairs


def train_args(data: Path, out: Path, **over) -> argparse.Namespace:
    from export import train

    p = argparse.ArgumentParser()
    train.add_args(p)
    args = p.parse_args(["--data", str(data), "--out", str(out)])
    for k, v in dict(emb=32, enc_hidden=32, dec_hidden=64, attn=32, vocab=120, epochs=12, val=8, test=8,
                     batch_size=16, lr=5e-3, dropout=0.1, quiet=True, patience=100, threads=1,
                     track="").items():
        setattr(args, k, v)
    for k, v in over.items():
        setattr(args, k, v)
    return args


def build_model(tmp: Path, cell: str) -> tuple[Path, Path]:
    """Train (real export code) and export a tiny model; returns (run_dir, model_dir)."""
    from export import onnx_export, train
    from export.data import write_tsv

    data = tmp / "corpus.tsv"
    write_tsv(data, fixture_pairs())
    run_dir = tmp / f"run-{cell}"
    train.run(train_args(data, run_dir, cell=cell))
    model_dir = tmp / f"model-{cell}"
    onnx_export.run(argparse.Namespace(run=str(run_dir), out=str(model_dir), force=False, version="test",
                                       no_eval=False, eval_beams=[1, 3]))
    return run_dir, model_dir


@pytest.fixture(scope="session")
def built_lstm(tmp_path_factory):
    return build_model(tmp_path_factory.mktemp("lstm"), "lstm")


@pytest.fixture(scope="session")
def model_dir(built_lstm) -> Path:
    """The tiny LSTM model directory, as `python -m export onnx` wrote it."""
    return built_lstm[1]


@pytest.fixture(scope="session")
def run_dir(built_lstm) -> Path:
    return built_lstm[0]


@pytest.fixture(scope="session")
def gru_model_dir(tmp_path_factory) -> Path:
    return build_model(tmp_path_factory.mktemp("gru"), "gru")[1]


@pytest.fixture(scope="session")
def translator(model_dir):
    from service.translator import Translator

    return Translator(model_dir, provider="cpu", intra_threads=1)


# -- real server processes (`python -m service`), shared by every test that talks HTTP to a real process --
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(*args: str, **env: str):
    """Start `python -m service ARGS` (one ORT thread unless overridden); stdout and stderr merged."""
    import os
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "service", *args], cwd=REPO, text=True,
                            env={**os.environ, "TRANSLATOR_INTRA_THREADS": "1", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_ready(proc, url: str, timeout: float = 60, output=None) -> None:
    """Waits for /health/ready; on failure the test fails with the server's output (`output()` when given,
    else read from proc.stdout)."""
    import time

    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{output() if output else proc.stdout.read()}")
        try:
            if httpx.get(url + "/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"server not ready after {timeout}s:\n{output() if output else proc.stdout.read()}")


class Server:
    """A running `python -m service` on loopback: .url, .proc; .stop() sends SIGTERM and returns the output.

    A thread reads the server's output as it comes: a pipe nobody reads fills up (64 KiB, ~800 access-log
    lines) and then blocks the server's event loop in its next log write."""

    def __init__(self, model_dir: Path, *args: str, **env: str):
        import threading

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = serve("--model-dir", str(model_dir), "--provider", "cpu", "--port", str(self.port), *args, **env)
        self.output = None
        self._lines: list[str] = []
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, ""):
            self._lines.append(line)

    def wait_ready(self) -> "Server":
        wait_ready(self.proc, self.url, output=lambda: self.text(wait=5))
        return self

    def text(self, wait: float = 0) -> str:
        """The output so far (after waiting up to `wait` s for the process's end of output)."""
        if wait:
            self._drain.join(wait)
        return "".join(self._lines)

    def stop(self, timeout: float = 30) -> str:
        import signal
        import subprocess

        if self.output is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.output = self.text(wait=10)
        return self.output


class Prometheus:
    """A real Prometheus on loopback with this config (written to WORKDIR/prometheus.yml; its data in WORKDIR/data):
    .proc, .url, .query(promql) -> the result list (the query must succeed). As a context manager it is stopped
    at the end (SIGTERM; SIGKILL after 20 s)."""

    def __init__(self, binary: str, config: dict, workdir: Path):
        import subprocess

        import yaml

        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([binary, f"--config.file={workdir / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def query(self, q: str) -> list:
        import urllib.parse

        import httpx

        body = httpx.get(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": q}), timeout=10).json()
        assert body["status"] == "success", f"{q}: {body}"
        return body["data"]["result"]

    def __enter__(self) -> "Prometheus":
        return self

    def __exit__(self, *exc) -> None:
        import subprocess

        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def start_server():
    """`start_server(model_dir, *flags, **env) -> Server`, ready to serve; every server is stopped afterwards."""
    servers = []

    def start(model_dir: Path, *args: str, wait: bool = True, **env: str) -> Server:
        s = Server(model_dir, *args, **env)
        servers.append(s)
        if wait:
            s.wait_ready()
        return s

    yield start
    for s in servers:
        s.stop()
