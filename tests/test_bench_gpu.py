"""bench/gpu.sh --check: every GPU benchmark's config composes and runs one tiny step on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_benchmark_check_runs_every_benchmark_on_cpu() -> None:
    environment = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu.sh"), "--check"],
        capture_output=True, text=True, cwd=REPO, timeout=600, env=environment,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout
    assert "bench/gpu.py --check: 7 benchmarks ran one step each on the CPU" in output
    for row in ("train fast_align", "train fast_full", "render forward+backward", "identity net", "regression",
                "GANFit++ refinement", "texture GAN training"):  # fmt: skip
        assert row in output, output[-3000:]
