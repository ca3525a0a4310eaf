"""Export the EMA generator of a texture-GAN training checkpoint as a standalone texture prior, and
compare its per-region colour statistics with the procedural textures it was trained on.

Usage: python scripts/export_texture_prior.py CKPT [--output fastganfit/assets/texture_gan_default.pt]
       [--samples 256] [--preview PNG]

``--preview`` writes 16 samples as UV maps (top two rows) and textured on the mean face (bottom two).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fastganfit.evaluation.texture_statistics import region_colour_statistics, relative_differences
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.facemodel.procedural_texture import REGION_NAMES, ProceduralTexture
from fastganfit.facemodel.texture_generator import TextureGenerator, default_texture_prior_path
from fastganfit.io.images import save_grid
from fastganfit.model.texture_gan import TextureGANModule
from fastganfit.render.face_renderer import FaceRenderer


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--output", type=Path, default=default_texture_prior_path())
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--preview", type=Path, default=None)
    args = parser.parse_args()
    if not args.checkpoint.is_file():
        print(f"error: checkpoint {args.checkpoint} does not exist", file=sys.stderr)
        return 2
    module = TextureGANModule.load_from_checkpoint(args.checkpoint, map_location="cpu")
    path = module.export_generator(args.output)
    prior = TextureGenerator.load(path)
    procedural = ProceduralTexture.for_ict(prior.resolution)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        reference = region_colour_statistics(procedural.sample(args.samples, generator), procedural.masks)
        candidate = region_colour_statistics(prior.sample(args.samples, generator), procedural.masks)
    mean_error, std_error = relative_differences(reference, candidate)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if args.preview is not None:
        print(f"wrote {save_preview(prior, args.preview)}")
    print(f"Per-region colour statistics, {args.samples} samples each, largest relative error over RGB:\n")
    print("| region | mean colour (procedural) | mean colour (prior) | mean error | std error |")
    print("|---|---|---|---|---|")
    for index, name in enumerate(REGION_NAMES):
        reference_colour = ", ".join(f"{value:.3f}" for value in reference[0][index].tolist())
        prior_colour = ", ".join(f"{value:.3f}" for value in candidate[0][index].tolist())
        print(f"| {name} | {reference_colour} | {prior_colour} | {mean_error[index].max():.1%} "
              f"| {std_error[index].max():.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
