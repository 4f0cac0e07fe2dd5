"""`python -m service.cli` (console script `translate`): English -> Polish from the command line.

    translate "How are you?" "Where is the train station?"      # arguments, one translation per line
    translate < english.txt > polish.txt                        # stdin line by line (a progress bar on a terminal)
    translate --input english.txt --json --alternatives 2       # JSON lines with scores and alternatives
    translate --attention heatmaps/ "How are you?"              # plus one attention heatmap PNG per sentence
    translate --url http://127.0.0.1:8000 "How are you?"        # through a running server instead

Without --url the model is loaded in this process and decoded by the same engine the server runs (continuous
batching): lines are submitted in chunks of --batch-size, two chunks in flight, so they are decoded together.
With --url each chunk is one POST /translate (urllib; Retry-After is honoured on 429/503).

A line of several sentences is cut into sentences, each decoded on its own, as the server does (service/documents.py).
Output keeps one line per input line: the translation (with --alternatives, the alternatives follow it,
tab-separated), or with --json an object {"source", "translation", "score", "alternatives": [{"text",
"score"}], "attention_png"}. A line that cannot be translated (too long) gives an empty line (with --json:
{"source", "error"}) and its reason on stderr, and the exit status is 1; a model that cannot be loaded, a server
that cannot be reached or refuses the request as a whole: one line on stderr, exit status 1.
"""
from __future__ import annotations

import argparse
import dataclasses
import asyncio
import itertools
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any, Iterator, TextIO

PROG = "translate"


class Fatal(Exception):
    """Stops the run: one line on stderr, exit status 1."""


class LineError(Exception):
    """This text (or chunk) cannot be translated; the others can."""


# -- backends: a chunk of texts -> one record per text --------------------------------------------------
class LocalBackend:
    """The model in this process, decoded by the server's engine in threads (engine_client.LocalEngine)."""

    def __init__(self, args: argparse.Namespace, settings):
        from .app import load_translator     # the server's own loader: same settings, same checks
        from .engine_client import LocalEngine
        from .errors import ModelLoadError

        try:
            self.translator = load_translator(settings)
        except ModelLoadError as e:
            raise Fatal(f"cannot load the model: {e}") from None
        self.beam, self.nbest = settings.beam_for(args.beam, args.alternatives)
        self.attention = bool(args.attention)
        self.engine = LocalEngine(self.translator, max_batch=settings.max_batch,
                             max_queue=max(settings.max_queue, 2 * args.batch_size))

    async def start(self) -> None:
        self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()

    async def translate(self, texts: list[str]) -> list[dict[str, Any]]:
        from .documents import combine_all, locate, prepare
        from .errors import InvalidInput, PayloadTooLarge

        docs = [prepare(t) for t in texts]        # a line of several sentences: each decoded on its own
        try:
            results = await self.engine.submit([s for d in docs for s in d.sentences], self.beam, self.nbest,
                                               self.attention)
        except PayloadTooLarge as e:
            raise LineError(str(locate(docs, e))) from None
        except InvalidInput as e:
            raise Fatal(str(e)) from None
        except Exception as e:      # ModelError, Overloaded: not this line's fault
            raise Fatal(f"{type(e).__name__}: {e}") from None
        return [{"source": text, "translation": r.text, "score": r.score,
                 "alternatives": [{"text": t, "score": sc} for t, sc in zip(r.alternatives, r.alternative_scores)],
                 "attention": r.attention} for text, r in zip(texts, combine_all(docs, results, self.attention))]


class HttpBackend:
    """A running server: one POST /translate per chunk (stdlib urllib, in a worker thread)."""

    def __init__(self, args: argparse.Namespace):
        self.url = args.url.rstrip("/") + "/translate"
        self.args = args
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if args.api_key:
            self.headers["Authorization"] = f"Bearer {args.api_key}"

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def translate(self, texts: list[str]) -> list[dict[str, Any]]:
        a = self.args
        body: dict[str, Any] = {"q": texts, "source": "en", "target": "pl", "alternatives": a.alternatives,
                                "return_attention": bool(a.attention)}
        if a.beam:
            body["beam_size"] = a.beam
        answer = await asyncio.to_thread(self._post, body)
        n = len(texts)
        alts, alt_scores = answer.get("alternatives") or [[]] * n, answer.get("alternative_scores") or [[]] * n
        scores, attention = answer.get("score") or [None] * n, answer.get("attention") or [None] * n
        return [{"source": t, "translation": tr, "score": s,
                 "alternatives": [{"text": x, "score": xs} for x, xs in zip(al, als)], "attention": att}
                for t, tr, s, al, als, att in zip(texts, answer["translatedText"], scores, alts, alt_scores, attention)]

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        for attempt in range(self.args.retries + 1):
            req = urllib.request.Request(self.url, data=data, headers=self.headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.args.timeout) as r:
                    return json.load(r)
            except urllib.error.HTTPError as e:
                message = _error_message(e)
                if e.code in (429, 503) and attempt < self.args.retries:
                    time.sleep(_retry_after(e))
                    continue
                if e.code == 413:
                    raise LineError(message) from None
                raise Fatal(f"the server at {self.args.url} answered {e.code}: {message}") from None
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                raise Fatal(f"cannot reach the server at {self.args.url}: {reason}") from None
            except ValueError as e:
                raise Fatal(f"the server at {self.args.url} did not answer JSON: {e}") from None
        raise AssertionError("unreachable")


def _error_message(e: urllib.error.HTTPError) -> str:
    raw = e.read().decode("utf-8", "replace")
    try:
        return json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        return raw.strip()[:300] or e.reason


def _retry_after(e: urllib.error.HTTPError) -> float:
    try:
        return min(30.0, max(0.1, float(e.headers.get("Retry-After", 1))))
    except ValueError:
        return 1.0


# -- the run ---------------------------------------------------------------------------------------------
async def translate_chunk(backend, texts: list[str]) -> list[dict[str, Any]]:
    """The whole chunk at once; when one of its texts cannot be translated, each text alone, so only it fails."""
    try:
        return await backend.translate(texts)
    except LineError as e:
        if len(texts) == 1:
            return [{"source": texts[0], "error": str(e)}]
    return [rec for t in texts for rec in await translate_chunk(backend, [t])]


async def run(args: argparse.Namespace, backend, chunks: Iterator[list[str]], out: TextIO, progress) -> int:
    """Translates chunk after chunk, keeping two in flight, writing records in input order. -> exit status."""
    failed, n, exhausted = 0, 0, False
    pending: deque[asyncio.Future] = deque()
    lines = iter(chunks)
    await backend.start()
    try:
        while True:
            while not exhausted and len(pending) < args.in_flight:
                chunk = await asyncio.to_thread(next, lines, None)   # reading never blocks the event loop
                if chunk is None:
                    exhausted = True
                else:
                    pending.append(asyncio.ensure_future(translate_chunk(backend, chunk)))
            if not pending:
                break
            for rec in await pending.popleft():
                n += 1
                failed += "error" in rec
                write(args, rec, n, out)
            out.flush()
            progress.update(n - progress.n)
    finally:
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await backend.stop()
    return 1 if failed else 0


def write(args: argparse.Namespace, rec: dict[str, Any], n: int, out: TextIO) -> None:
    if "error" in rec:
        print(f"{PROG}: line {n}: {rec['error']}", file=sys.stderr)
    elif args.attention:
        att = rec.pop("attention", None)
        if att and att["weights"]:
            from .heatmap import plot_attention, slug

            path = Path(args.attention) / f"{n:04d}-{slug(rec['source'])}.png"
            plot_attention(att["source_tokens"], att["target_tokens"], att["weights"], path,
                           title=f"{rec['source']} \u2192 {rec['translation']}")
            rec["attention_png"] = str(path)
        else:
            rec["attention_png"] = None
    rec.pop("attention", None)
    if args.json:
        if not args.alternatives and "alternatives" in rec:
            del rec["alternatives"]
        out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    elif "error" in rec:
        out.write("\n")
    else:
        out.write("\t".join([rec["translation"]] + [a["text"] for a in rec["alternatives"]]) + "\n")


def chunked(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    it = (line.rstrip("\r\n") for line in lines)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


class _NoProgress:
    n = 0

    def update(self, k: int) -> None:
        self.n += k

    def close(self) -> None:
        pass


def make_progress(show: bool, total: int | None):
    if not show:
        return _NoProgress()
    try:
        from tqdm import tqdm
    except ImportError:          # tqdm is in the serve extra; without it, no bar
        return _NoProgress()
    return tqdm(total=total, unit=" sentences", file=sys.stderr, dynamic_ncols=True, mininterval=0.2)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Translate English to Polish: the arguments, or --input FILE, "
                                "or stdin line by line (one output line per input line).",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n" + "\n".join(__doc__.split("\n\n")[1].splitlines()))
    p.add_argument("text", nargs="*", help="sentences to translate (default: read --input or stdin, line by line)")
    p.add_argument("-i", "--input", metavar="FILE", help="translate this file line by line ('-' = stdin)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--url", help="a running server (e.g. http://127.0.0.1:8000) instead of loading the model here")
    p.add_argument("--api-key", default=os.environ.get("TRANSLATOR_API_KEY") or None,
                   help="API key for --url servers that need one [env TRANSLATOR_API_KEY]")
    p.add_argument("--model", metavar="DIR", help="model directory (default: TRANSLATOR_MODEL_DIR or models/eng-pol)")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), help="onnxruntime provider (default: "
                   "TRANSLATOR_PROVIDER or auto)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: TRANSLATOR_INTRA_THREADS "
                   "or the CPU count, at most 8)")
    p.add_argument("--beam", type=int, metavar="K", help="beam width, 1 = greedy (default: the service's default "
                   "beam, TRANSLATOR_DEFAULT_BEAM, 3); widened to alternatives+1 when narrower")
    p.add_argument("--alternatives", type=int, default=0, metavar="N",
                   help="also print the N next-best translations (tab-separated; with --json, with scores)")
    p.add_argument("--attention", metavar="DIR", help="write one attention heatmap PNG per sentence into DIR "
                   "(needs matplotlib: pip install -e '.[export]')")
    p.add_argument("--json", action="store_true", help="JSON lines: source, translation, score, alternatives")
    p.add_argument("--batch-size", type=int, default=32, metavar="N",
                   help="lines submitted together (one request per chunk with --url; default 32)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when reading a file or pipe and stderr is a terminal)")
    p.add_argument("--timeout", type=float, default=120.0, help="--url: seconds to wait for each request")
    p.add_argument("--retries", type=int, default=5, help="--url: retries on 429/503, after Retry-After")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    args.in_flight = 2
    if args.batch_size < 1 or args.alternatives < 0 or (args.beam is not None and args.beam < 1) \
            or (args.threads is not None and args.threads < 0) or args.retries < 0 or args.timeout <= 0:
        p.error("--batch-size and --beam must be >= 1; --alternatives, --threads and --retries >= 0; --timeout > 0")
    if args.text and args.input:
        p.error("give sentences as arguments or --input FILE, not both")
    try:
        return _main(args)
    except Fatal as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _main(args: argparse.Namespace) -> int:
    if args.attention:
        from .heatmap import MissingMatplotlib, require_matplotlib

        try:
            require_matplotlib()
        except MissingMatplotlib as e:
            raise Fatal(str(e)) from None
    # input: arguments, a file, or stdin (a terminal: each line as soon as it is typed)
    total: int | None = None
    stream: TextIO | None = None
    if args.text:
        lines: Iterator[str] = iter(args.text)
        total, interactive = len(args.text), False
    elif args.input and args.input != "-":
        try:
            stream = open(args.input, encoding="utf-8")
            total = sum(1 for _ in stream)
            stream.seek(0)
        except OSError as e:
            raise Fatal(f"cannot read {args.input}: {e.strerror}") from None
        lines, interactive = stream, False
    else:
        lines, interactive = sys.stdin, sys.stdin.isatty()
    if interactive:
        args.batch_size, args.in_flight = 1, 1
    show = args.progress if args.progress is not None else (not args.text and not interactive and sys.stderr.isatty())

    if args.url:
        backend = HttpBackend(args)
    else:
        from .settings import Settings

        given = {"model_dir": args.model, "provider": args.provider, "intra_threads": args.threads}
        try:
            settings = dataclasses.replace(Settings.from_env(), **{k: v for k, v in given.items() if v is not None})
        except ValueError as e:
            raise Fatal(str(e)) from None
        backend = LocalBackend(args, settings)

    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    progress = make_progress(show, total)
    try:
        return asyncio.run(run(args, backend, chunked(lines, args.batch_size), out, progress))
    finally:
        progress.close()
        if stream is not None:
            stream.close()
        if args.output:
            out.close()


if __name__ == "__main__":
    sys.exit(main())
