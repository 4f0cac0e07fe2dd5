"""`python -m bench.run` (`make bench`): batching strategies side by side, on one model, one machine, one run.

Strategies: naive (TRANSLATOR_MAX_BATCH=1), static request-level dynamic batching (Triton/TorchServe style,
N and T tuned first), continuous batching (ours), and PyTorch eager one request at a time (when torch and
the checkpoint are there). Each is measured in-process (asyncio clients on the engine, no HTTP) and through
the real HTTP service (a `python -m service` process, loaded by a separate closed-loop load-generator
process on loopback). Writes results.json, a markdown report and a latency/throughput PNG. The compute ceiling
is the engine alone with a full batch and no clients (`compute_ceiling`; `--only-ceiling` measures
just that and writes nothing). The CUDA figures come from `python -m bench.gpu` (`make bench-gpu`).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def pct(xs, p):
    return float(np.percentile(xs, p)) if len(xs) else float("nan")


def summarize(lat, n_done, wall, extra=None):
    lat = sorted(lat)
    out = {"sentences_per_s": n_done / wall, "p50_ms": pct(lat, 50) * 1e3, "p95_ms": pct(lat, 95) * 1e3,
           "p99_ms": pct(lat, 99) * 1e3, "requests": n_done}
    out.update(extra or {})
    return out


def short_p50(records, src_len, sentences):
    """p50 latency (ms) of the requests whose sentence is in the shorter half of the mix."""
    cut = statistics.median(src_len[s] for s in sentences)
    return pct([lat for i, lat in records if src_len[sentences[i]] <= cut], 50) * 1e3


# -- in-process ------------------------------------------------------------------------------------
async def closed_loop(call, sentences, concurrency, seconds):
    """`concurrency` clients, each sending the next sentence as soon as `await call(text)` returns."""
    records, stop_at = [], time.perf_counter() + seconds

    async def client(c):
        j = c * 7919
        while time.perf_counter() < stop_at:
            i = j % len(sentences); j += 1
            t0 = time.perf_counter()
            await call(sentences[i])
            records.append((i, time.perf_counter() - t0))
    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(concurrency)))
    return records, time.perf_counter() - t0


def summarize_records(records, wall, src_len, sentences, extra=None):
    return summarize([lat for _, lat in records], len(records), wall,
                     {"short_p50_ms": short_p50(records, src_len, sentences), **(extra or {})})


def run_inprocess(translator, sentences, src_len, concurrency, seconds, **engine_kw):
    from bench.baselines import engine as make_engine

    async def main():
        engine = make_engine(translator, **engine_kw)
        engine.start()
        try:
            return await closed_loop(lambda text: engine.submit([text]), sentences, concurrency, seconds)
        finally:
            await engine.stop()
    return summarize_records(*asyncio.run(main()), src_len, sentences)


def held_out_sentences(model_dir: Path, n: int | None = None) -> list[str]:
    """The model's held-out English sentences (its test.tsv), deduplicated, in a fixed shuffled order (seed 0):
    every benchmark sends the same ones."""
    from export.data import read_tsv

    sentences = sorted({en for en, _ in read_tsv(Path(model_dir) / "test.tsv")})
    random.Random(0).shuffle(sentences)
    return sentences[:n]


def compute_ceiling(translator, sentences, max_batch=64, n=3000, warm=300, beam=1):
    """The compute ceiling: the engine alone (its encoder and decoder threads), no clients, no HTTP.

    n + warm + 2 * max_batch one-sentence submits are queued at once (the sentence mix repeated), so the batch
    stays at max_batch rows until the queue runs dry; timed from the warm-th answer to the (warm + n)-th, so
    neither the start nor the draining tail counts. Decoder steps and rows per step come from the engine's own
    metrics (translator_batch_size)."""
    from prometheus_client import REGISTRY

    from service.engine_client import LocalEngine

    total = n + warm + 2 * max_batch
    texts = [sentences[i % len(sentences)] for i in range(total)]

    def sample(name):
        return REGISTRY.get_sample_value(name) or 0.0

    async def main():
        engine = LocalEngine(translator, max_batch=max_batch, max_queue=total)
        engine.start()
        answered, marks = [], {}

        async def one(text):
            await engine.submit([text], beam, beam)
            answered.append(time.perf_counter())
            if len(answered) in (warm, warm + n):
                marks[len(answered)] = (time.perf_counter(), sample("translator_batch_size_count"),
                                        sample("translator_batch_size_sum"))
        try:
            await asyncio.gather(*(one(t) for t in texts))
        finally:
            await engine.stop()
        return marks
    marks = asyncio.run(main())
    (t0, c0, s0), (t1, c1, s1) = marks[warm], marks[warm + n]
    steps = c1 - c0
    return {"sentences_per_s": n / (t1 - t0), "sentences": n, "wall_s": t1 - t0, "decoder_steps": steps,
            "mean_rows_per_step": (s1 - s0) / steps * beam, "ms_per_step": (t1 - t0) / steps * 1e3,
            "max_batch": max_batch, "beam": beam,
            "method": "the Engine (encoder and decoder threads) with a queue kept longer than the batch; no clients"}


def run_torch(checkpoint, translator, sentences, src_len, concurrency, seconds, threads):
    """PyTorch eager, one request at a time (what a user without ONNX would serve): a single worker, FIFO."""
    import torch

    from export.onnx_export import load_checkpoint

    torch.set_num_threads(threads)
    model, _ = load_checkpoint(Path(checkpoint))
    sp = translator.sp_tgt

    def translate(text):
        ids = translator.encode_source(text)
        return sp.decode(model.greedy(torch.tensor([ids]), max_len=translator.max_length_for(len(ids)))[0])

    async def main():
        lock = asyncio.Lock()

        async def call(text):
            async with lock:
                await asyncio.to_thread(translate, text)
        return await closed_loop(call, sentences, concurrency, seconds)
    return summarize_records(*asyncio.run(main()), src_len, sentences)


# -- through HTTP ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir, env_over):
    """`python -m service` with these TRANSLATOR_* settings; with BENCH_BATCHING=static, the same server with the
    request-level batching baseline in its engine (`python -m bench.baselines`)."""
    port = free_port()
    env = {**os.environ, "TRANSLATOR_MODEL_DIR": str(model_dir), "TRANSLATOR_PORT": str(port),
           "TRANSLATOR_LOG_LEVEL": "warning", "TRANSLATOR_MAX_QUEUE": "100000", **env_over}
    module = "bench.baselines" if env.get("BENCH_BATCHING", "continuous") != "continuous" else "service"
    proc = subprocess.Popen([sys.executable, "-m", module], env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url)
    return proc, url


def wait_ready(proc, url, name="the server"):
    """Polls url's /health/ready (every 0.1 s, for up to about a minute) until it answers 200; raises
    RuntimeError if the process exits first, or (after killing it) if it never gets ready."""
    import httpx

    for _ in range(600):
        try:
            if httpx.get(url + "/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{name} did not become ready")


def paired_c1(url, alone, sentences, rounds=3):
    """The low-load latency target, measured in pairs so that the machine's drift cancels out: for each sentence,
    its bare in-process decode (alone.translate_batch, in this process) and, right after, the same sentence
    through the idle HTTP service (one keep-alive connection, the standard library's http.client). Returns the
    median over all pairs of HTTP latency / bare decode time, and the p50s of both."""
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = HTTPConnection(u.hostname, u.port)
    ratios, http, bare = [], [], []
    try:
        for _ in range(rounds):
            for s in sentences:
                body = json.dumps({"q": s, "source": "en", "target": "pl", "beam_size": 1})
                t0 = time.perf_counter()
                alone.translate_batch([s])
                t1 = time.perf_counter()
                conn.request("POST", "/translate", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                t2 = time.perf_counter()
                assert r.status == 200, r.status
                bare.append(t1 - t0); http.append(t2 - t1); ratios.append((t2 - t1) / (t1 - t0))
    finally:
        conn.close()
    return {"median_ratio": statistics.median(ratios), "http_p50_ms": pct(http, 50) * 1e3,
            "bare_p50_ms": pct(bare, 50) * 1e3, "pairs": len(ratios)}


def run_http(url, sent_file, sentences, src_len, concurrency, seconds):
    """-> (summary, the successful (sentence index, latency) records) of one load-generator run."""
    out = subprocess.run([sys.executable, "-m", "bench.loadgen", url + "/translate", str(sent_file),
                          str(concurrency), str(seconds)], capture_output=True, text=True, cwd=REPO, check=True)
    res = json.loads(out.stdout)
    ok = [(i, lat) for i, lat, status, _ in res["requests"] if status == 200]
    return summarize_records(ok, res["wall"], src_len, sentences, {"errors": len(res["requests"]) - len(ok)}), ok


# -- the report ----------------------------------------------------------------------------------------
def plot(results, conc, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
    for k, (name, by_c) in enumerate(results.items()):
        for where, style in (("http", "-o"), ("inprocess", "--s")):
            pts = [(c, by_c[where][str(c)]) for c in conc if where in by_c and str(c) in by_c[where]]
            if not pts:
                continue
            label = f"{name} ({'HTTP' if where == 'http' else 'in-process'})"
            ax[0].plot([c for c, _ in pts], [r["sentences_per_s"] for _, r in pts], style, color=f"C{k}", label=label)
            ax[1].plot([r["sentences_per_s"] for _, r in pts], [r["p99_ms"] for _, r in pts], style, color=f"C{k}",
                       label=label)
    ax[0].set_xscale("log", base=2); ax[0].set_xlabel("concurrent clients (closed loop)")
    ax[0].set_ylabel("sentences / s"); ax[0].grid(alpha=.3); ax[0].legend(fontsize=7)
    ax[1].set_yscale("log"); ax[1].set_xlabel("sentences / s"); ax[1].set_ylabel("p99 latency (ms)")
    ax[1].grid(alpha=.3); ax[1].set_title("latency vs throughput (points: concurrency 1, 8, 32, 64)")
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--model", default=str(REPO / "models" / "eng-pol"))
    p.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "eng-pol"),
                   help="run directory with best.pt, for the PyTorch eager baseline (skipped if missing)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--sentences", type=int, default=400)
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compare", default=str(REPO / "models" / "eng-pol-fp32"),
                   help="another variant of the same model (make export-fp32 writes it): its ceiling and chrF are reported")
    p.add_argument("--ceiling-sentences", type=int, default=3000,
                   help="sentences timed for the compute ceiling (after 300 of warm-up)")
    p.add_argument("--only-ceiling", action="store_true",
                   help="measure only the compute ceiling (shipped model, and --compare if present), print it as "
                        "JSON and write nothing")
    p.add_argument("--out", default=str(REPO / "docs" / "benchmarks"))
    args = p.parse_args(argv)

    from service.translator import Translator

    out = Path(args.out)
    model_dir = Path(args.model)
    sentences = held_out_sentences(model_dir, args.sentences)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    if args.only_ceiling:
        res = {}
        for d in (model_dir, Path(args.compare)):
            if d.is_dir():
                other = Translator(d, provider="cpu", intra_threads=args.threads, encoder_threads=1)
                other.warmup()
                res[d.name] = compute_ceiling(other, sentences, args.max_batch, args.ceiling_sentences)
                log(f"ceiling {d.name}: {res[d.name]['sentences_per_s']:.0f}/s")
        print(json.dumps(res, indent=1))
        return
    out.mkdir(parents=True, exist_ok=True)
    sent_file = out / "sentences.json"
    sent_file.write_text(json.dumps(sentences, ensure_ascii=False))
    # the engine's translator as the service configures it (encoder on its own thread with 1 ORT thread)
    tr = Translator(model_dir, provider="cpu", intra_threads=args.threads, encoder_threads=1)
    tr.warmup()
    src_len = {s: len(tr.encode_source(s)) for s in sentences}

    # the reference for the low-load latency target (paired_c1): one sentence decoded bare, with every ORT
    # thread on both graphs, the fastest a sentence decodes here
    alone = Translator(model_dir, provider="cpu", intra_threads=args.threads)
    alone.warmup()

    # tune the static (request-level) strategy so it is a fair opponent: best N, T at concurrency 32
    # through the HTTP service at 32 clients, where the targets are judged; two rounds, each point's mean (one
    # point is too noisy on a shared machine to pick from)
    tuning = {}
    for _ in range(2):
        for n in (16, 32, 64):
            for wait in (0.0, 5.0):
                proc, url = start_server(model_dir, {"TRANSLATOR_MAX_BATCH": str(n), "BENCH_BATCHING": "static",
                                                     "BENCH_BATCH_WAIT_MS": str(wait),
                                                     "TRANSLATOR_INTRA_THREADS": str(args.threads)})
                try:
                    r = run_http(url, sent_file, sentences, src_len, 32, args.seconds / 2)[0]
                finally:
                    proc.terminate(); proc.wait(30)
                key = f"N={n},T={wait:g}ms"
                tuning[key] = tuning.get(key, 0.0) + r["sentences_per_s"] / 2
                log(f"static N={n} T={wait}: {r['sentences_per_s']:.0f}/s")
    best = max(tuning, key=tuning.get)
    n_best, t_best = int(best.split(",")[0][2:]), float(best.split("T=")[1][:-2])

    strategies = {
        "naive (no batching)": dict(max_batch=1),
        f"static batching (N={n_best}, T={t_best:g} ms)": dict(max_batch=n_best, mode="static", batch_wait_ms=t_best),
        f"continuous batching (max {args.max_batch})": dict(max_batch=args.max_batch),
    }
    results: dict = {name: {"inprocess": {}, "http": {}} for name in strategies}
    ceiling = compute_ceiling(tr, sentences, args.max_batch, args.ceiling_sentences)
    log(f"ceiling: {ceiling['sentences_per_s']:.0f}/s ({ceiling['ms_per_step']:.2f} ms per step of "
        f"{ceiling['mean_rows_per_step']:.1f} rows)")
    ceiling["by_batch"] = {}               # the same loop at smaller batches: where throughput stops rising
    for b in sorted({16, 32, args.max_batch}):
        c = ceiling if b == args.max_batch else compute_ceiling(tr, sentences, b, args.ceiling_sentences)
        ceiling["by_batch"][str(b)] = c["sentences_per_s"]
    log(f"ceiling by batch size: {ceiling['by_batch']}")
    for name, kw in strategies.items():
        for c in args.concurrency:
            results[name]["inprocess"][str(c)] = r = run_inprocess(tr, sentences, src_len, c, args.seconds, **kw)
            log(f"{name} in-process c={c}: {r['sentences_per_s']:.0f}/s p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f}")
    variants = {}
    if Path(args.compare).is_dir():       # the same engine and load on the other variant of the model
        for label, d in (("shipped", model_dir), ("compared", Path(args.compare))):
            other = Translator(d, provider="cpu", intra_threads=args.threads, encoder_threads=1)
            other.warmup()
            q = other.info.raw.get("quality", {})
            variants[label] = {"dir": d.name, "quantization": other.info.raw.get("quantization", {}).get("type", "float32"),
                               "ceiling": compute_ceiling(other, sentences, args.max_batch,
                                                          args.ceiling_sentences)["sentences_per_s"],
                               "chrf_greedy": q.get("greedy", {}).get("chrf"), "bleu_greedy": q.get("greedy", {}).get("bleu"),
                               "size_mb": sum(f.stat().st_size for f in d.iterdir()) / 1e6}
            log(f"variant {d.name}: {variants[label]}")
            del other
    ckpt = Path(args.checkpoint) / "best.pt"
    try:
        import torch  # noqa: F401
        has_torch = ckpt.exists()
    except ImportError:
        has_torch = False
    if has_torch:
        name = "PyTorch eager (one at a time)"
        results[name] = {"inprocess": {}}
        for c in args.concurrency:
            results[name]["inprocess"][str(c)] = r = run_torch(ckpt.parent, tr, sentences, src_len, c, args.seconds, args.threads)
            log(f"{name} c={c}: {r['sentences_per_s']:.0f}/s p50 {r['p50_ms']:.1f}")
    del tr
    c1_ratio = None
    for name, kw in strategies.items():
        env = {"TRANSLATOR_MAX_BATCH": str(kw["max_batch"]), "BENCH_BATCHING": kw.get("mode", "continuous"),
               "BENCH_BATCH_WAIT_MS": str(kw.get("batch_wait_ms", 0)), "TRANSLATOR_INTRA_THREADS": str(args.threads)}
        proc, url = start_server(model_dir, env)
        try:
            for c in args.concurrency:
                r, ok = run_http(url, sent_file, sentences, src_len, c, args.seconds)
                results[name]["http"][str(c)] = r
                if c == 1 and name.startswith("continuous"):
                    c1_ratio = paired_c1(url, alone, sentences[:100])
                log(f"{name} HTTP c={c}: {r['sentences_per_s']:.0f}/s p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f}")
        finally:
            proc.terminate(); proc.wait(30)

    meta = {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime_threads": args.threads, "seconds_per_point": args.seconds, "sentences": len(sentences),
            "mean_source_tokens": statistics.mean(src_len.values()), "static_tuning": tuning,
            "ceiling": ceiling, "c1_median_latency_over_bare": c1_ratio, "variants": variants, "cuda": _cuda_meta(out),
            "command": "make bench  # = python -m bench.run"}
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    plot(results, args.concurrency, out / "latency_throughput.png")
    (out / "README.md").write_text(report(meta, results, args.concurrency))
    print((out / "README.md").read_text())


def _cuda_meta(out: Path) -> dict | None:
    """The meta of `make bench-gpu`'s gpu.json beside this report, when it was measured on CUDA."""
    try:
        meta = json.loads((out / "gpu.json").read_text())["meta"]
    except (OSError, ValueError, KeyError):
        return None
    return meta if meta.get("provider") == "cuda" else None


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report(meta, results, conc) -> str:
    names = list(results)
    cont = next(n for n in names if n.startswith("continuous"))
    naive = next(n for n in names if n.startswith("naive"))
    static = next(n for n in names if n.startswith("static"))
    L = ["# Batching benchmark", "",
         f"Machine: {meta['cpu']}, {meta['cores']} cores; onnxruntime intra-op threads {meta['onnxruntime_threads']}, "
         f"spinning off; {meta['sentences']} English sentences from the model's held-out test split "
         f"(mean {meta['mean_source_tokens']:.1f} source tokens), greedy decoding; closed-loop clients, "
         f"{meta['seconds_per_point']:g} s per point. Reproduce: `{meta['command']}`.", "",
         "| strategy | where | clients | sentences/s | p50 ms | p95 ms | p99 ms | short-half p50 ms |",
         "|---|---|---|---|---|---|---|---|"]
    for n in names:
        for where in ("http", "inprocess"):
            for c in conc:
                r = results[n].get(where, {}).get(str(c))
                if r:
                    L.append(f"| {n} | {'HTTP' if where == 'http' else 'in-process'} | {c} | {r['sentences_per_s']:.1f} | "
                             f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['short_p50_ms']:.1f} |")
    ceil = meta["ceiling"]["sentences_per_s"]
    by_batch = meta["ceiling"].get("by_batch", {})
    L += ["", f"Compute ceiling (the engine alone, in-process, no clients: its encoder and decoder threads with a "
              f"queue kept longer than the batch of {meta['ceiling']['max_batch']} rows; `compute_ceiling` in "
              f"bench/run.py): **{ceil:.1f} sentences/s** "
              f"({meta['ceiling']['ms_per_step']:.1f} ms per decoder step of {meta['ceiling']['mean_rows_per_step']:.1f} "
              "rows on average)" + (
                  "; the same loop kept at " + ", ".join(f"{b} rows: {v:.0f}/s" for b, v in by_batch.items())
                  if len(by_batch) > 1 else "") + ".", "",
          "![latency and throughput](latency_throughput.png)", "", "## Against the targets (HTTP, 32 clients)", ""]
    h = {n: results[n]["http"].get("32") for n in (cont, naive, static)}
    if all(h.values()):
        L += [f"- continuous / naive throughput: **{h[cont]['sentences_per_s'] / h[naive]['sentences_per_s']:.2f}×** "
              f"(target ≥ 5×); p99 {h[cont]['p99_ms']:.0f} ms vs {h[naive]['p99_ms']:.0f} ms",
              f"- continuous / static throughput: **{h[cont]['sentences_per_s'] / h[static]['sentences_per_s']:.2f}×** "
              f"(target ≥ 1.3×); short-sentence p50 {h[cont]['short_p50_ms']:.0f} ms vs {h[static]['short_p50_ms']:.0f} ms",
              f"- continuous through HTTP / in-process ceiling: **{h[cont]['sentences_per_s'] / ceil:.0%}** (target ≥ 70%)"]
    if meta["c1_median_latency_over_bare"]:
        c1 = meta["c1_median_latency_over_bare"]
        L.append(f"- 1 client: median latency over the bare in-process decode of the same sentence: "
                 f"**{c1['median_ratio']:.2f}×** (target ≤ 1.3×; {c1['pairs']} pairs, each sentence decoded bare "
                 f"in the benchmark process and right after sent through the idle service: p50 "
                 f"{c1['bare_p50_ms']:.1f} ms bare, {c1['http_p50_ms']:.1f} ms through HTTP)")
    if meta.get("variants"):
        L += ["", "## Model variants (same engine, in-process ceiling, greedy)", "",
              "| model dir | weights | sentences/s | chrF | BLEU | size MB |", "|---|---|---|---|---|---|"]
        for v in meta["variants"].values():
            L.append(f"| {v['dir']} | {v['quantization']} | {v['ceiling']:.0f} | {v['chrf_greedy']} | "
                     f"{v['bleu_greedy']} | {v['size_mb']:.1f} |")
    L += ["", "Static batching was tuned first (through HTTP, 32 clients, 4 s a point, sentences/s, mean of two rounds): " +
          ", ".join(f"{k}: {v:.0f}" for k, v in meta["static_tuning"].items()) + ".", "",
          "## CUDA", "", cuda_paragraph(meta.get("cuda")), "", "## Notes", "",
          f"- Points are {meta['seconds_per_point']:g} s each; on a shared machine expect ±10% between runs, so repeat "
          "before drawing conclusions about strategies within 20% of each other.",
          "- Where the time goes (profiles, what each change gained, why a target is missed): [profile.md](profile.md), "
          "written by hand, not by this script.", ""]
    return "\n".join(L)


def cuda_paragraph(cuda: dict | None) -> str:
    """The benchmark document's word on CUDA: where its figures are, or plainly that there are none yet."""
    how = ("`make bench-gpu` (under 5 minutes, on a machine with an NVIDIA GPU; it first installs onnxruntime-gpu into "
           "its own virtualenv, .venv-gpu) measures naive, static and continuous batching on CUDA, in-process and "
           "through HTTP, with TRANSLATOR_IO_BINDING on and off, and writes [gpu.md](gpu.md) and gpu.json here; "
           "without a usable GPU it stops at once and writes nothing.")
    if cuda:
        return f"CUDA figures: [gpu.md](gpu.md), measured on {cuda['gpu']} (onnxruntime {cuda['onnxruntime']}). " + how
    return "CUDA is still unmeasured: no GPU has been available to the sessions that built and ran this so far. " + how


if __name__ == "__main__":
    main()
