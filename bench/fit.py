"""Reconstruction benchmark: face detection + crop, regression (ms/image at batch 1 and 8) and per-image
optimisation (s/image for 100 steps of each stage, and for the default GANFit++ refinement) with the
default-size model config (conf/model/fast_ganfit.yaml: 224 px crops, 112 px renders, dlib identity network,
procedural texture). The regressor has random (zero-head) weights: speed does not depend on them. The input
is the astronaut photo. Writes the 'fit (<device>)' section of BENCHMARKS.md.

Usage: python bench/fit.py [--repeats 3] [--steps 100] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import time_call, write_section
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from skimage import data

from fastganfit.fitting.faces import crop_largest_face, graph_crop_template
from fastganfit.fitting.optimise import refine, regress
from fastganfit.fitting.settings import FitSettings
from fastganfit.perception.landmarks import DlibLandmarker
from fastganfit.regression.checkpoint import build_fast_ganfit_module

CONF = Path(__file__).resolve().parent.parent / "fastganfit" / "conf"


def configs() -> tuple[dict, FitSettings]:
    """The default model config (as a fast_full training run resolves it) and the default refinement."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        train = compose("train", overrides=["experiment=fast_full", "model.init_checkpoint=null"])
        fit = compose("fit", overrides=["image=unused"])
    return OmegaConf.to_container(train.model, resolve=True), instantiate(fit.refinement, _convert_="all")


def seconds_per_step(module, crops, landmarks, start, settings: FitSettings, stage: str, steps: int) -> float:
    """Wall-clock seconds per optimisation step of one stage (its own steps replaced by ``steps``)."""
    single = FitSettings(tuple(s for s in settings.with_steps({stage: steps}).stages if s.name == stage))
    refine(module.graph, crops, landmarks, start, single.with_steps({stage: 1}))  # warm-up
    started = time.perf_counter()
    refine(module.graph, crops, landmarks, start, single)
    return (time.perf_counter() - started) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100, help="optimisation steps timed per stage")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    load = os.getloadavg()[0]
    model_config, refinement = configs()
    module = build_fast_ganfit_module(model_config, device)
    crop_size = module.graph.crop_size
    landmarker = DlibLandmarker()
    photo = data.astronaut()
    template = graph_crop_template(module.graph, crop_size)
    detect = time_call(lambda: crop_largest_face(photo, landmarker, template, crop_size, 40), args.repeats)
    face = crop_largest_face(photo, landmarker, template, crop_size, 40)
    crop = torch.from_numpy(np.array(face.crop)).permute(2, 0, 1).float().div(255).to(device)
    points = torch.from_numpy(np.array(face.landmarks)).to(device)

    rows = [f"| detect + 68 landmarks + aligned crop (dlib HOG, 512x512 photo) | 1 | {detect * 1000:.0f} ms |"]
    for batch in (1, 8):
        crops, landmarks = crop.expand(batch, -1, -1, -1).contiguous(), points.expand(batch, -1, -1).contiguous()
        seconds = time_call(lambda crops=crops, landmarks=landmarks: regress(module, crops, landmarks), args.repeats)
        rows.append(f"| regression (identity net + heatmaps + regressor + one render + exposure match) | {batch} | "
                    f"{seconds / batch * 1000:.0f} ms/image |")  # fmt: skip
        print(rows[-1], flush=True)
    start = regress(module, crop[None], points[None])
    per_step = {}
    for stage in refinement.stages:
        per_step[stage.name] = seconds_per_step(module, crop[None], points[None], start, refinement, stage.name,
                                                args.steps)  # fmt: skip
        loss, seconds = ", ".join(stage.loss.active_terms), per_step[stage.name] * 100
        rows.append(f"| 100 steps of the `{stage.name}` stage ({loss}) | 1 | {seconds:.1f} s/image |")
        print(rows[-1], flush=True)
    default = sum(per_step[stage.name] * stage.steps for stage in refinement.stages)
    plan = " + ".join(f"{stage.steps} {stage.name}" for stage in refinement.stages)
    rows.append(f"| default GANFit++ refinement (conf/fit/refine.yaml: {plan} steps) | 1 | {default:.1f} s/image |")
    renderer = module.graph.renderer
    body = "\n".join(
        [
            f"Default-size model config: {crop_size}x{crop_size} crops, {renderer.image_size[0]} px renders "
            f"(`{renderer.backend}` backend on `{device.type}`), dlib identity network, "
            f"{type(module.graph.texture).__name__} texture; the regressor's weights are random (speed does not depend "
            f"on them). Astronaut photo; median of {args.repeats} runs after a warm-up for detection and regression; "
            f"optimisation timed over {args.steps} steps per stage at batch 1. Load average when the run started: "
            f"{load:.1f} (other jobs on the machine slow these numbers down).",
            "",
            "| step | batch | time |",
            "|---|---|---|",
            *rows,
        ]
    )
    write_section(f"fit ({device.type})", body, f"python bench/fit.py --device {device.type}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
