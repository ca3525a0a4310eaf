"""Training benchmark: Fast-GANFit training images/s per phase (``fast_align``, ``fast_full``) with the default
config sizes (224 px crops, 112 px renders, batch 8, default data loader) on synthetic faces rendered into a
temporary folder; warm-up steps excluded. Writes the 'train (<device>)' section of BENCHMARKS.md.

Usage: python bench/train.py [--faces 16] [--warmup 2] [--steps 5] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from common import timing_trainer, write_section
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from fastganfit.data.synthetic import generate_synthetic_faces

CONF = Path(__file__).resolve().parent.parent / "fastganfit" / "conf"
PHASES = ("fast_align", "fast_full")


class StepTimer(L.Callback):
    """Seconds of each training step after ``warmup`` steps: ``compute`` (wall clock) from batch start to batch end
    (forward, backward, optimiser), ``cpu`` the training process's CPU time over the same span (all its threads;
    less sensitive to other jobs than the wall clock), ``end_to_end`` (wall clock) from one batch end to the next
    (data loading included)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.compute: list[float] = []
        self.cpu: list[float] = []
        self.end_to_end: list[float] = []
        self._start = self._cpu_start = 0.0
        self._last_end: float | None = None

    @staticmethod
    def _now(module: L.LightningModule) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)
        return time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch, batch_idx: int) -> None:
        self._start, self._cpu_start = self._now(module), time.process_time()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        now = self._now(module)
        if trainer.global_step > self.warmup:
            self.compute.append(now - self._start)
            self.cpu.append(time.process_time() - self._cpu_start)
            self.end_to_end.append(now - self._last_end)
        self._last_end = now


def experiment_config(experiment: str, shards: Path, warmup: int, steps: int) -> DictConfig:
    """train.py's config of ``experiment`` with its defaults, training on ``shards`` without validation."""
    overrides = [
        f"experiment={experiment}",
        f"data.train_urls={shards}",
        "data.val_urls=null",
        "data.synthetic=null",
        f"data.epoch_samples={100 * (warmup + steps)}",  # one long epoch: no epoch boundaries inside the timing
        "model.init_checkpoint=null",  # the full phase's starting weights do not change its speed
    ]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides)


def measure_phase(cfg: DictConfig, root: Path, device: str, warmup: int, steps: int) -> dict:
    """Train ``cfg``'s model on its data for ``warmup + steps`` steps; median step times in seconds."""
    module = instantiate(cfg.model, _convert_="all")
    datamodule = instantiate(cfg.data, _convert_="all")
    timer = StepTimer(warmup)
    trainer = timing_trainer(device, warmup + steps, root, timer)
    trainer.fit(module, datamodule=datamodule)
    return {
        "batch": cfg.data.batch_size,
        "crop": cfg.model.heatmaps.crop_size,
        "render": cfg.model.renderer.image_size,
        "workers": cfg.data.num_workers,
        "compute": statistics.median(timer.compute),
        "cpu": statistics.median(timer.cpu),
        "end_to_end": statistics.median(timer.end_to_end),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=int, default=16, help="synthetic faces to render (they repeat)")
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of the timing")
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.faces < 1 or args.warmup < 1 or args.steps < 1:
        parser.error("--faces, --warmup and --steps must be positive")
    load = os.getloadavg()[0]
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as folder:
        shards = Path(folder) / "shards"
        configs = {experiment: experiment_config(experiment, shards, args.warmup, args.steps) for experiment in PHASES}
        crop = configs[PHASES[0]].model.heatmaps.crop_size  # the heatmaps' crop size is the data's
        generate_synthetic_faces(shards, n=args.faces, seed=123, crop_size=crop, max_per_shard=max(args.faces // 2, 1))
        for experiment, cfg in configs.items():
            result = measure_phase(cfg, Path(folder) / experiment, args.device, args.warmup, args.steps)
            results[experiment] = result
            batch = result["batch"]
            print(
                f"{experiment:10s} {1000 * result['compute']:8.0f} ms/step  {batch / result['compute']:6.2f} images/s "
                f"(end to end {batch / result['end_to_end']:6.2f} images/s), {result['cpu'] / batch:.2f} CPU s/image",
                flush=True,
            )
            rows.append(
                f"| `experiment={experiment}` | {1000 * result['compute']:.0f} | {batch / result['compute']:.2f} | "
                f"{batch / result['end_to_end']:.2f} | {result['cpu'] / batch:.2f} |"
            )
    first = results[PHASES[0]]
    body = "\n".join(
        [
            f"FastGANFitModule with the experiments' default config: {first['crop']} px crops resized to "
            f"{first['render']} px renders, batch {first['batch']}, dlib identity network, resnet10t heatmap "
            f"backbone, procedural 128 px UV texture; {args.faces} synthetic faces (repeated), augmentation on, "
            f"{first['workers']} DataLoader workers, device `{args.device}`. Median over {args.steps} steps after "
            f"{args.warmup} warm-up steps (the first step also logs the image grid). Step = forward, backward and "
            "optimiser step; end to end = from one step's end to the next (data loading included); CPU s/image = "
            f"the training process's CPU time per image over its {torch.get_num_threads()} threads (less sensitive "
            "to other jobs on the machine than the wall clock, though not immune).",
            "",
            "| phase | ms/step | training images/s | end to end images/s | CPU s/image |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Load average when the run started: {load:.1f} (other jobs on the machine slow these numbers down).",
        ]
    )
    write_section(f"train ({args.device})", body, f"python bench/train.py --device {args.device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
