"""`python -m export snapshot --run runs/x --out checkpoints/x.pt`: a training run's last checkpoint, small
enough to commit between training chunks: weights in float16, no optimizer moments (Adam rebuilds them in a
few hundred steps), plus the history, the scheduler and the position inside a part-done epoch.
`python -m export train --out runs/x --resume --resume-from checkpoints/x.pt` continues from it on a fresh
clone (the run directory's split and tokenizers are rebuilt from the corpus, or copied from the snapshot)."""
from __future__ import annotations

import argparse
import io
from pathlib import Path


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="training run directory holding last.pt")
    p.add_argument("--out", required=True, help="snapshot file to write")


def run(args) -> Path:
    import torch

    run_dir, out = Path(args.run), Path(args.out)
    ck = torch.load(run_dir / "last.pt", weights_only=False)
    ck["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ck["model"].items()}
    ck.pop("opt", None)
    ck["tokenizers"] = {name: (run_dir / name).read_bytes() for name in ("spm_en.model", "spm_pl.model")}
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(ck, buf)
    out.write_bytes(buf.getvalue())
    done = ck["epoch"] + (ck["partial"]["pos"] / len(ck["partial"]["batches"]) if ck.get("partial") else 0)
    print(f"{out}: {len(buf.getvalue()) / 2**20:.1f} MiB, {done:.2f} epochs trained", flush=True)
    return out
