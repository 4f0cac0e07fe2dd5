"""`make bench-gpu` (python -m bench.gpu): without CUDA it stops at once, clearly, and writes nothing."""
from __future__ import annotations

import subprocess
import sys
import time

import onnxruntime as ort
import pytest

from conftest import REPO


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this machine has CUDA")
def test_bench_gpu_without_cuda_fails_fast_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.gpu", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    took = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr
    assert took < 20
    msg = proc.stderr.strip()
    assert len(msg.splitlines()) == 1 and "Traceback" not in msg
    assert "CUDA is not usable here, nothing was measured or written" in msg and "onnxruntime-gpu" in msg
    assert not out.exists()


def test_makefile_has_a_documented_bench_gpu_target():
    lines = (REPO / "Makefile").read_text().splitlines()
    i = lines.index("bench-gpu: $(GPU_VENV)/.gpu")
    assert lines[i - 1].startswith("## ") and "bench.gpu" in lines[i + 1]
