"""Shared helpers for benchmarks: machine description and atomic updates of BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

BENCHMARKS_FILE = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEach section is written by the script it names; re-run that script to refresh it.\n"


def machine_description() -> str:
    """One line naming CPU count, torch version, the GPU (if any) and the current load average."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = os.getloadavg()[0]
    return (
        f"{platform.machine()} {platform.processor() or ''} ({os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads), {gpu}, Python {platform.python_version()}, "
        f"torch {torch.__version__}; load average {load:.1f} when the section was written"
    ).replace("  ", " ")


def time_call(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def write_section(name: str, body: str, command: str) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md, atomically.

    The section records the command that produced it and the machine it ran on.
    """
    text = BENCHMARKS_FILE.read_text() if BENCHMARKS_FILE.exists() else HEADER
    section = (
        f"<!-- bench:{name} -->\n## {name}\n\n"
        f"Command: `{command}`  \nMachine: {machine_description()}  \n"
        f"Date: {time.strftime('%Y-%m-%d')}\n\n{body.strip()}\n<!-- /bench:{name} -->\n"
    )
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    fd, tmp = tempfile.mkstemp(dir=BENCHMARKS_FILE.parent, prefix=".BENCHMARKS.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, BENCHMARKS_FILE)


def timing_trainer(device: str, max_steps: int, root: str | Path, callback: L.Callback,
                   precision: str | int | None = None) -> L.Trainer:  # fmt: skip
    """A bare Lightning Trainer for timing training steps on ``device`` (``cuda`` or ``cpu``): one device, no
    logger, checkpoints, progress bar or validation; ``callback`` measures the steps."""
    return L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision=precision if precision is not None else "32-true",
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=root,
        callbacks=[callback],
    )
