"""`python -m bench.gpu` (`make bench-gpu`): the CUDA figures, in under 5 minutes, on a machine with an NVIDIA GPU.

Needs onnxruntime-gpu (`make bench-gpu` installs it into its own virtualenv, .venv-gpu). Without a usable
CUDAExecutionProvider it stops at once, exit status 2, writes nothing. Otherwise, on CUDA, with I/O binding on
and off (TRANSLATOR_IO_BINDING):
  1. agreement: the same sentences decoded with binding on and off (greedy and beam 3), counted identical;
  2. in-process: the compute ceiling (bench.run.compute_ceiling: the engine's decode loop alone, batch kept
     full) at 64 and 256 rows, the bare one-sentence decode time, and naive / static / continuous batching
     under closed-loop asyncio clients;
  3. through HTTP: a `python -m service --provider cuda` process per strategy, loaded by bench.loadgen.
Writes docs/benchmarks/gpu.json (everything) and gpu.md (the tables). The same sentences as `make bench`.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from bench.run import REPO, compute_ceiling, held_out_sentences, pct, run_http, run_inprocess, start_server

NO_CUDA = 2          # exit status when CUDA cannot be used


def _nvidia_pip_libs() -> list[str]:
    """lib directories of NVIDIA's pip wheels (nvidia-cudnn-cu12, ...), which onnxruntime-gpu[cuda,cudnn] pulls in."""
    site = sysconfig.get_paths()["purelib"]
    return sorted(d for d in glob.glob(os.path.join(site, "nvidia", "*", "lib")) if os.path.isdir(d))


def _with_cuda_libs(argv: list[str]) -> None:
    """Re-executes this process once with the pip-installed CUDA/cuDNN libraries on LD_LIBRARY_PATH, so that
    this process and the servers it starts find them (the service itself never edits the library path)."""
    libs = _nvidia_pip_libs()
    have = os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)
    if libs and not set(libs) <= set(have) and not os.environ.get("BENCH_GPU_REEXEC"):
        env = {**os.environ, "BENCH_GPU_REEXEC": "1",
               "LD_LIBRARY_PATH": os.pathsep.join(libs + [p for p in have if p])}
        os.execve(sys.executable, [sys.executable, "-m", "bench.gpu", *argv], env)


def cuda_problem(model_dir: Path) -> str | None:
    """None when onnxruntime can run this model on CUDA; otherwise why not, in one line."""
    import onnxruntime as ort

    from service.errors import ModelLoadError
    from service.translator import Translator

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        gpu = "no NVIDIA GPU visible (nvidia-smi not found)" if not shutil.which("nvidia-smi") else "nvidia-smi is there"
        return (f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (available: {', '.join(available)}); "
                f"{gpu}. Run `make bench-gpu` on a machine with an NVIDIA GPU: it installs onnxruntime-gpu")
    try:
        Translator(model_dir, provider="cuda")
    except ModelLoadError as e:
        return str(e)
    return None


def gpu_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown GPU"
    except (OSError, subprocess.SubprocessError):
        return "unknown GPU"


def agreement(a, b, texts) -> dict:
    """How many of these sentences two translators decode identically (text; score to 1e-5), greedy and beam 3."""
    out = {}
    for beam, sents in ((1, texts), (3, texts[:40])):
        ra, rb = a.translate_batch(sents, beam_size=beam), b.translate_batch(sents, beam_size=beam)
        out[f"beam{beam}"] = {"sentences": len(sents),
                              "same_text": sum(x.text == y.text for x, y in zip(ra, rb)),
                              "same_score": sum(abs(x.hypotheses[0].score - y.hypotheses[0].score) <= 1e-5
                                                for x, y in zip(ra, rb))}
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(REPO / "models" / "eng-pol"))
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per load point")
    p.add_argument("--sentences", type=int, default=400)
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--ceiling-sentences", type=int, default=3000)
    p.add_argument("--out", default=str(REPO / "docs" / "benchmarks"))
    p.add_argument("--provider", default="cuda", choices=("cuda", "cpu"),
                   help="cpu only checks this script end to end on a machine without a GPU (its figures are not "
                        "CUDA figures; use another --out)")
    args = p.parse_args(argv)
    if args.provider == "cuda":
        _with_cuda_libs(argv)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    model_dir = Path(args.model)
    if args.provider == "cuda" and (why := cuda_problem(model_dir)):
        log(f"bench-gpu: CUDA is not usable here, nothing was measured or written: {why}")
        return NO_CUDA

    import onnxruntime as ort

    from service.translator import Translator

    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sentences = held_out_sentences(model_dir, args.sentences)
    sent_file = out / "gpu_sentences.json"
    sent_file.write_text(json.dumps(sentences, ensure_ascii=False))
    trs = {b: Translator(model_dir, provider=args.provider, io_binding=b) for b in ("on", "off")}
    for tr in trs.values():
        tr.warmup()
    src_len = {s: len(trs["on"].encode_source(s)) for s in sentences}
    res: dict = {"agreement": agreement(trs["on"], trs["off"], sentences[:200]), "inprocess": {}, "http": {}}
    log(f"agreement (binding on vs off): {res['agreement']}")

    conc, mb = [1, 32, 128], args.max_batch
    strategies = {"naive (no batching)": dict(max_batch=1),
                  f"static batching (N={mb}, T=2 ms)": dict(max_batch=mb, mode="static", batch_wait_ms=2.0),
                  f"continuous batching (max {mb})": dict(max_batch=mb)}
    for b, tr in trs.items():
        r = res["inprocess"][f"io_binding {b}"] = {"ceiling": {}, "bare_p50_ms": None}
        for rows in (mb, 4 * mb):
            r["ceiling"][str(rows)] = c = compute_ceiling(tr, sentences, rows, args.ceiling_sentences)
            log(f"binding {b}: ceiling at {rows} rows {c['sentences_per_s']:.0f}/s, {c['ms_per_step']:.2f} ms/step")
        bare = []
        for s in sentences[:50]:
            t0 = time.perf_counter(); tr.translate_batch([s]); bare.append(time.perf_counter() - t0)
        r["bare_p50_ms"] = pct(bare, 50) * 1e3
        for name, kw in strategies.items():
            for c in conc:
                r.setdefault(name, {})[str(c)] = x = run_inprocess(tr, sentences, src_len, c, args.seconds, **kw)
                log(f"binding {b}: {name} c={c}: {x['sentences_per_s']:.0f}/s p50 {x['p50_ms']:.1f} p99 {x['p99_ms']:.1f}")
    del trs

    runs = [(name, kw, "on", conc if name.startswith("continuous") else [32]) for name, kw in strategies.items()]
    runs.append((f"continuous batching (max {mb})", strategies[f"continuous batching (max {mb})"], "off", conc))
    for name, kw, b, cs in runs:
        env = {"TRANSLATOR_PROVIDER": args.provider, "TRANSLATOR_IO_BINDING": b,
               "TRANSLATOR_MAX_BATCH": str(kw["max_batch"]), "BENCH_BATCHING": kw.get("mode", "continuous"),
               "BENCH_BATCH_WAIT_MS": str(kw.get("batch_wait_ms", 0))}
        proc, url = start_server(model_dir, env)
        try:
            for c in cs:
                r, _ = run_http(url, sent_file, sentences, src_len, c, args.seconds)
                res["http"].setdefault(f"io_binding {b}", {}).setdefault(name, {})[str(c)] = r
                log(f"HTTP binding {b}: {name} c={c}: {r['sentences_per_s']:.0f}/s p50 {r['p50_ms']:.1f} "
                    f"p99 {r['p99_ms']:.1f} errors {r['errors']}")
        finally:
            proc.terminate(); proc.wait(30)

    meta = {"gpu": gpu_name() if args.provider == "cuda" else "none (--provider cpu: a check of the script)",
            "provider": args.provider, "onnxruntime": ort.__version__, "cpu_cores": os.cpu_count(),
            "python": platform.python_version(), "seconds_per_point": args.seconds, "sentences": len(sentences),
            "max_batch": mb, "wall_s": time.perf_counter() - t_start,
            "command": "make bench-gpu  # = python -m bench.gpu"}
    (out / "gpu.json").write_text(json.dumps({"meta": meta, **res}, indent=1))
    (out / "gpu.md").write_text(report(meta, res, conc))
    print((out / "gpu.md").read_text())
    log(f"bench-gpu: done in {meta['wall_s']:.0f} s")
    return 0


def report(meta, res, conc) -> str:
    L = [f"# CUDA benchmark ({meta['provider']})", "",
         f"GPU: {meta['gpu']}; onnxruntime {meta['onnxruntime']}, {meta['cpu_cores']} CPU cores; {meta['sentences']} "
         f"English sentences of the held-out test split (the same as `make bench`), greedy; closed-loop clients, "
         f"{meta['seconds_per_point']:g} s per point; whole run {meta['wall_s']:.0f} s. Reproduce: `{meta['command']}`.",
         "", "## I/O binding on vs off: same translations?", "",
         "| decoding | sentences | same text | same score (1e-5) |", "|---|---|---|---|"]
    for k, v in res["agreement"].items():
        L.append(f"| {k} | {v['sentences']} | {v['same_text']} | {v['same_score']} |")
    L += ["", "## In-process (engine, no HTTP)", "",
          "| TRANSLATOR_IO_BINDING | compute ceiling | sentences/s | ms per step | rows per step |", "|---|---|---|---|---|"]
    for b, r in res["inprocess"].items():
        for rows, c in r["ceiling"].items():
            L.append(f"| {b.split()[-1]} | {rows} rows kept full | {c['sentences_per_s']:.0f} | {c['ms_per_step']:.2f} | "
                     f"{c['mean_rows_per_step']:.1f} |")
    L += ["", "Bare decode of one sentence alone, p50: " +
          ", ".join(f"binding {b.split()[-1]} {r['bare_p50_ms']:.1f} ms" for b, r in res["inprocess"].items()) + ".", "",
          "| TRANSLATOR_IO_BINDING | strategy | where | clients | sentences/s | p50 ms | p99 ms |",
          "|---|---|---|---|---|---|---|"]
    for where in ("inprocess", "http"):
        for b, by_name in res[where].items():
            for name, by_c in by_name.items():
                if name in ("ceiling", "bare_p50_ms"):
                    continue
                for c in conc:
                    x = by_c.get(str(c))
                    if x:
                        L.append(f"| {b.split()[-1]} | {name} | {'HTTP' if where == 'http' else 'in-process'} | {c} | "
                                 f"{x['sentences_per_s']:.1f} | {x['p50_ms']:.1f} | {x['p99_ms']:.1f} |")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
