"""Export the EMA generator of a texture-GAN training checkpoint as a standalone texture prior, and
compare its per-region colour statistics with the procedural textures it was trained on.

Usage: python scripts/export_texture_prior.py CKPT_OR_FOLDER [--output fastganfit/assets/texture_gan_default.pt]
       [--samples 1024] [--select-samples 1024] [--preview PNG]

Given a folder (e.g. ``<run>/checkpoints`` trained with ``+callbacks.checkpoint.save_top_k=-1``), every
checkpoint in it is scored on ``--select-samples`` textures with selection seeds (not the seeds of the
final table or of tests/test_texture_prior.py), and the one with the smallest worst relative error over
all regions, channels, means and spreads is exported. ``--preview`` writes 16 samples as UV maps (top
two rows) and textured on the mean face (bottom two).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.io.images import save_grid
from fastganfit.render.face_renderer import FaceRenderer
from fastganfit.texture.gan_module import TextureGANModule
from fastganfit.texture.generator import TextureGenerator, default_texture_prior_path
from fastganfit.texture.procedural import REGION_NAMES, ProceduralTexture
from fastganfit.texture.statistics import (
    procedural_and_sample_statistics,
    procedural_statistics_errors,
    relative_differences,
)

SELECTION_SEEDS = (11, 12)


def save_preview(prior: TextureGenerator, path: Path, count: int = 16) -> Path:
    """UV maps of ``count`` samples and the same textures rendered on the mean ICT face, as one grid."""
    model = MorphableModel.ict()
    renderer = FaceRenderer.from_model(model, image_size=prior.resolution)
    light = torch.zeros(count, 10)
    light[:, 0:3], light[:, 3:6], light[:, 6:9] = -0.35, 0.35, torch.tensor([0.4, 0.4, 0.0])
    with torch.no_grad():
        textures = prior.sample(count, torch.Generator().manual_seed(7))
        faces = renderer(model.mean_vertices(count), textures, torch.zeros(count, 7), light).image
    return save_grid(torch.cat([textures, faces]), path, columns=8)


def checkpoint_step(path: Path) -> int:
    """The optimiser step in a Lightning checkpoint name (``...step=3000.ckpt``); -1 when it has none."""
    match = re.search(r"step=(\d+)", path.name)
    return int(match.group(1)) if match else -1


def select_checkpoint(folder: Path, num_samples: int) -> Path:
    """The checkpoint in ``folder`` whose EMA generator matches the procedural statistics best."""
    paths = sorted((path for path in folder.glob("*.ckpt") if checkpoint_step(path) >= 0), key=checkpoint_step)
    if not paths:
        raise FileNotFoundError(f"{folder} holds no step checkpoints (*step=N.ckpt)")
    procedural: ProceduralTexture | None = None
    scores: dict[Path, float] = {}
    for path in tqdm(paths, desc="scoring checkpoints", unit="ckpt"):
        generator = TextureGANModule.load_from_checkpoint(path, map_location="cpu", init_generator=None).generator_ema
        if procedural is None:
            procedural = ProceduralTexture.for_ict(generator.resolution)
        mean_error, std_error = procedural_statistics_errors(generator.sample, procedural, num_samples, SELECTION_SEEDS)
        scores[path] = max(mean_error.max().item(), std_error.max().item())
        tqdm.write(f"{path.name}: worst mean error {mean_error.max():.1%}, worst spread error {std_error.max():.1%}")
    best = min(scores, key=scores.get)
    print(f"selected {best} (worst error {scores[best]:.1%})")
    return best


def print_comparison(prior: TextureGenerator, num_samples: int) -> None:
    """The per-region table of the exported prior against the procedural textures (test seeds 1 and 2)."""
    procedural = ProceduralTexture.for_ict(prior.resolution)
    reference, candidate = procedural_and_sample_statistics(prior.sample, procedural, num_samples)
    mean_error, std_error = relative_differences(reference, candidate)
    print(f"Per-region colour statistics, {num_samples} samples each, largest relative error over RGB:\n")
    print("| region | mean colour (procedural) | mean colour (prior) | mean error | std error |")
    print("|---|---|---|---|---|")
    for index, name in enumerate(REGION_NAMES):
        reference_colour = ", ".join(f"{value:.3f}" for value in reference[0][index].tolist())
        prior_colour = ", ".join(f"{value:.3f}" for value in candidate[0][index].tolist())
        print(f"| {name} | {reference_colour} | {prior_colour} | {mean_error[index].max():.1%} "
              f"| {std_error[index].max():.1%} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a training checkpoint, or a folder of them to choose from")
    parser.add_argument("--output", type=Path, default=default_texture_prior_path())
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--select-samples", type=int, default=1024)
    parser.add_argument("--preview", type=Path, default=None)
    args = parser.parse_args()
    checkpoint = args.checkpoint
    try:
        if checkpoint.is_dir():
            checkpoint = select_checkpoint(checkpoint, args.select_samples)
        elif not checkpoint.is_file():
            raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    module = TextureGANModule.load_from_checkpoint(checkpoint, map_location="cpu", init_generator=None)
    path = module.export_generator(args.output)
    prior = TextureGenerator.load(path)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) from {checkpoint}")
    if args.preview is not None:
        print(f"wrote {save_preview(prior, args.preview)}")
    print_comparison(prior, args.samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
