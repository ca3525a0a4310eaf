"""One-shot GPU benchmark: render, identity, training (align and full at 112 and 224 px renders), regression,
GANFit++ refinement and texture-GAN training on one CUDA device, with the trainer=gpu config (bf16-mixed).
Writes the 'gpu' section of BENCHMARKS.md, the GPU's name included. ``--check`` composes every config and runs
one step of each on the CPU at tiny sizes (nothing is written): the script's own test.

Usage: python bench/gpu.py [--check] [--batch 32] [--steps 10] (bench/gpu.sh also runs the gpu-marked tests)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from common import timing_trainer, write_section
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from fastganfit.data.synthetic import generate_synthetic_faces
from fastganfit.fitting.optimise import refine, regress
from fastganfit.params import FaceParams

CONF = Path(__file__).resolve().parent.parent / "fastganfit" / "conf"
#: Throughput targets on one H100/H200-class GPU (benchmark rows, not tests).
TARGETS = {
    "train fast_full, 224 px renders": ">= 400 images/s",
    "regression, 224 px renders": ">= 1,000 images/s",
    "GANFit++ refinement (100 steps), batch 32": "<= 1 s/image",
}
#: Tiny sizes for --check (CPU): 64 px crops, 32 px renders.
TINY = [
    "heatmaps.crop_size=64", "heatmaps.heatmap_size=32", "texture.resolution=32",
    "identity.layers=[stage2,stage3]", "model.regressor.adapter_channels=16", "model.regressor.feature_dim=32",
    "model.regressor.hidden=32",
]  # fmt: skip
TINY_GAN = [
    "model.generator.resolution=16", "model.generator.z_dim=16", "model.generator.w_dim=16",
    "model.generator.base_channels=16", "model.generator.max_channels=32", "model.discriminator.base_channels=16",
    "model.discriminator.max_channels=32", "data.num_workers=0",
]  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """What one run measures: ``device``, ``batch``, timed ``steps`` after ``warmup``, ``renders`` (px) of the
    training rows, ``crop`` (px of the data), ``extra`` overrides (tiny sizes for --check)."""

    device: str
    batch: int
    steps: int
    warmup: int
    renders: tuple[int, ...]
    crop: int
    extra: tuple[str, ...]


def compose_train(overrides: list[str]) -> DictConfig:
    """train.py's config with ``overrides``."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides)


def seconds(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Mean wall-clock seconds of ``fn()`` over ``repeats`` runs after one warm-up run."""
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


class StepClock(L.Callback):
    """Wall-clock seconds of the training steps after ``warmup`` (one synchronisation at each end)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.started = 0.0
        self.elapsed = 0.0

    def _now(self, module: L.LightningModule) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)
        return time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == self.warmup:
            self.started = self._now(module)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.elapsed = self._now(module) - self.started


def train_rate(cfg: DictConfig, settings: Settings, root: Path) -> float:
    """Training images/s of ``cfg`` (its trainer's precision) over ``settings.steps`` steps after the warm-up."""
    module = instantiate(cfg.model, _convert_="all")
    data = instantiate(cfg.data, _convert_="all")
    clock = StepClock(settings.warmup)
    trainer = timing_trainer(settings.device, settings.warmup + settings.steps, root, clock, cfg.trainer.precision)
    trainer.fit(module, datamodule=data)
    return settings.batch * settings.steps / clock.elapsed


def regressor_module(settings: Settings, render: int) -> L.LightningModule:
    cfg = compose_train(["experiment=fast_full", "model.init_checkpoint=null",
                         f"renderer.image_size={render}", *settings.extra])  # fmt: skip
    return instantiate(cfg.model, _convert_="all").to(settings.device)


def measure(settings: Settings, folder: Path) -> list[tuple[str, str]]:
    """Every row: (what, measured value)."""
    device, batch = settings.device, settings.batch
    rows: list[tuple[str, str]] = []
    shards = folder / "shards"
    generate_synthetic_faces(shards, n=batch, seed=123, crop_size=settings.crop, max_per_shard=batch, progress=False)
    for experiment in ("fast_align", "fast_full"):
        for render in settings.renders:
            cfg = compose_train([
                f"experiment={experiment}", "trainer=gpu", f"data.train_urls={shards}", "data.val_urls=null",
                "data.synthetic=null", f"data.batch_size={batch}", "data.num_workers=2",
                f"data.epoch_samples={batch * (settings.warmup + settings.steps) * 10}",
                "model.init_checkpoint=null", "model.log_images_every_n_steps=0",
                f"renderer.image_size={render}", *settings.extra,
            ])  # fmt: skip
            rate = train_rate(cfg, settings, folder / f"{experiment}_{render}")
            rows.append((f"train {experiment}, {render} px renders, batch {batch}, {cfg.trainer.precision}",
                         f"{rate:.0f} images/s"))  # fmt: skip
            print(rows[-1], flush=True)
    rows.extend(measure_parts(settings))
    gan_batch = max(batch, 4)  # the procedural recipe's moment term needs 4 textures per batch
    gan = compose_train(["experiment=texture_gan_procedural", "trainer=gpu", f"data.batch_size={gan_batch}",
                         "model.sample_every_n_steps=1000000", *(TINY_GAN if device != "cuda" else [])])  # fmt: skip
    # two optimiser steps (D, then G) per iteration
    doubled = Settings(
        **{**settings.__dict__, "batch": gan_batch, "warmup": 2 * settings.warmup, "steps": 2 * settings.steps}
    )
    rate = train_rate(gan, doubled, folder / "gan") / 2
    rows.append(
        (f"texture GAN training ({gan.model.generator.resolution} px), batch {gan_batch}", f"{rate:.0f} textures/s")
    )
    return rows


def measure_parts(settings: Settings) -> list[tuple[str, str]]:
    """Render, identity net, regression and GANFit++ rows at the largest render size."""
    device, batch = settings.device, settings.batch
    module = regressor_module(settings, settings.renders[-1])
    graph = module.graph
    size = graph.render_size[0]
    crops = torch.rand(batch, 3, settings.crop, settings.crop, device=device)
    landmarks = torch.rand(batch, 68, 2, device=device) * settings.crop * 0.5 + settings.crop * 0.25
    params = FaceParams.zeros(graph.sizes, batch, device=device)
    target = graph.target(crops, landmarks)
    texture = graph.texture(params.texture).detach()
    vertices = graph.model(params.shape, params.expression).detach()
    camera = graph.landmark_camera(target.landmarks)

    def render_step() -> None:
        leaf = vertices.clone().requires_grad_()
        graph.renderer(leaf, texture, camera, params.light).image.mean().backward()

    def identity_step() -> None:
        image = target.image.detach().requires_grad_()
        graph.identity(image, target.landmarks).embedding.sum().backward()

    per_render = seconds(render_step, device, settings.steps)
    per_identity = seconds(identity_step, device, settings.steps)
    rows = [
        (f"render forward+backward, {size} px, batch {batch}", f"{batch / per_render:.0f} images/s"),
        (f"identity net forward+backward, batch {batch}", f"{batch / per_identity:.0f} images/s"),
    ]
    with torch.autocast(device, dtype=torch.bfloat16):
        per_regression = seconds(lambda: regress(module, crops, landmarks), device, settings.steps)
    rows.append((f"regression, {size} px renders, batch {batch}, bf16", f"{batch / per_regression:.0f} images/s"))
    with initialize_config_dir(str(CONF), version_base="1.3"):
        refinement = instantiate(compose("fit", overrides=["image=unused"]).refinement, _convert_="all")
    if device != "cuda":
        refinement = refinement.with_steps({stage.name: 1 for stage in refinement.stages})
    start = regress(module, crops, landmarks)
    steps = sum(stage.steps for stage in refinement.stages)
    per_fit = seconds(lambda: refine(graph, crops, landmarks, start, refinement), device, 1)
    rows.append(
        (f"GANFit++ refinement ({steps} steps), {size} px renders, batch {batch}", f"{per_fit / batch:.2f} s/image")
    )
    return rows


def section(rows: list[tuple[str, str]], settings: Settings) -> str:
    """The BENCHMARKS.md body: measured rows, then the targets."""
    table = [f"| {what} | {value} |" for what, value in rows]
    targets = [f"| {what} | {target} |" for what, target in TARGETS.items()]
    return "\n".join(
        [
            f"One GPU, trainer=gpu (bf16-mixed), synthetic {settings.crop} px crops (repeated), "
            f"{settings.steps} timed steps after {settings.warmup} warm-up steps, batch {settings.batch}.",
            "",
            "| benchmark | measured |",
            "|---|---|",
            *table,
            "",
            "Targets on one H100/H200-class GPU:",
            "",
            "| benchmark | target |",
            "|---|---|",
            *targets,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="one tiny step of everything on the CPU, no writing")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per benchmark")
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the timing")
    args = parser.parse_args()
    if args.batch < 1 or args.steps < 1 or args.warmup < 1:
        parser.error("--batch, --steps and --warmup must be positive")
    if args.check:
        settings = Settings("cpu", 2, 1, 1, (32,), 64, tuple(TINY))
    elif torch.cuda.is_available():
        settings = Settings("cuda", args.batch, args.steps, args.warmup, (112, 224), 224, ())
    else:
        parser.error("no CUDA device: run on a GPU machine, or give --check for the CPU check")
    os.environ.setdefault("TQDM_DISABLE", "1")
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as folder:
        rows = measure(settings, Path(folder))
    for what, value in rows:
        print(f"{what}: {value}", flush=True)
    if args.check:
        print(f"bench/gpu.py --check: {len(rows)} benchmarks ran one step each on the CPU")
        return 0
    body = f"GPU: {torch.cuda.get_device_name(0)}. " + section(rows, settings)
    write_section("gpu", body, "bench/gpu.sh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
