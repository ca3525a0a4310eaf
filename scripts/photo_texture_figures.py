"""The pictures of docs/textures.md's photo-texture section.

``docs/images/photo_texture_synthetic.png``: synthetic faces (known geometry, camera, light, UV texture): the
render | the true UV albedo | the albedo extracted with the true parameters (grey where not seen) | its confidence
(after mirror completion) | the error x10.
``docs/images/photo_texture_astronaut.png`` (with a trained checkpoint): the astronaut crop | the fitted model
texture | the photo albedo (grey where not seen) | confidence | the blended texture fit.py exports.

Usage: python scripts/photo_texture_figures.py [--ckpt outputs/demo/train/full/checkpoints/last.ckpt] [--refine]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data

from fastganfit.data.synthetic import SyntheticFaceSource, random_background, sample_generator, sample_params
from fastganfit.fitting.inputs import InputImage
from fastganfit.fitting.photo_texture import detail_crops, detail_scale, photo_texture_extractor
from fastganfit.fitting.pipeline import ImageOutcome
from fastganfit.fitting.reconstructor import FaceReconstructor
from fastganfit.io.images import save_grid
from fastganfit.render.camera import YAW
from fastganfit.texture.photo_uv import PhotoTextureExtractor

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "docs" / "images"
SIZE, RESOLUTION, UNSEEN_GREY = 224, 128, 0.5


def panel(texture: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """UV maps ``[B, C, R, R]`` (C = 1 or 3) as ``[B, 3, size, size]`` pictures."""
    return F.interpolate(texture.expand(-1, 3, -1, -1), size=(size, size), mode="bilinear", align_corners=False)


def masked(albedo: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """The albedo where seen (or mirrored), grey elsewhere."""
    return albedo * confidence + UNSEEN_GREY * (1 - confidence)


@torch.no_grad()
def synthetic_figure(path: Path) -> None:
    source = SyntheticFaceSource(seed=0, crop_size=SIZE)
    params = [sample_params(source.model, source.texture.latent_dim, sample_generator(0, i), source.settings)
              for i in range(3)]  # fmt: skip
    batch = {name: torch.stack([p[name] for p in params]) for name in params[0]}
    batch["camera"][:, YAW] = torch.tensor([math.radians(a) for a in (0.0, 25.0, -45.0)])
    vertices = source.model(batch["shape"], batch["expression"])
    textures = source.texture(batch["texture"])
    backgrounds = torch.stack([random_background(SIZE, sample_generator(1, i)) for i in range(3)])
    image = source.renderer(vertices, textures, batch["camera"], batch["light"], backgrounds).image.clamp(0, 1)
    renderer = source.renderer
    extractor = PhotoTextureExtractor(source.model, renderer.camera, renderer.lighting, RESOLUTION, backend="torch")
    out = extractor(image, vertices, batch["camera"], batch["light"], textures * 0 + 0.5)
    error = ((out.albedo - textures).abs() * 10 * out.confidence).clamp(0, 1)
    rows = [image, panel(textures), panel(masked(out.albedo, out.confidence)), panel(out.confidence), panel(error)]
    save_grid(torch.stack(rows, 1).flatten(0, 1), path, columns=len(rows))


@torch.no_grad()
def astronaut_figure(ckpt: Path, refine: bool, path: Path) -> None:
    photo = REPO / "outputs" / "astronaut.png"
    photo.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(photo)
    reconstructor = FaceReconstructor.from_checkpoint(ckpt, device="cpu")
    runner = reconstructor.runner(refine, faces="largest")
    prepared = runner.prepare(InputImage(photo, "astronaut", photo.parent), ImageOutcome(str(photo)))
    if not prepared:
        raise RuntimeError("no face found in the astronaut photo")
    with torch.enable_grad():
        params, _, crops = runner.fit_batch(prepared)
    views = runner.views(crops, params)
    extractor = photo_texture_extractor(reconstructor.graph, 256, runner.options.photo_light)
    scale = detail_scale(extractor.resolution, runner.crop_size)
    sharp = detail_crops([prepared[0].photo.image], [prepared[0].face.transform], runner.crop_size, scale)
    out = extractor(sharp, views.vertices, params.camera, params.light, views.texture)
    crops = F.interpolate(crops, size=(SIZE, SIZE), mode="bicubic", align_corners=False).clamp(0, 1)
    rows = [crops, panel(out.model), panel(masked(out.albedo, out.confidence)), panel(out.confidence),
            panel(out.blended)]  # fmt: skip
    save_grid(torch.cat(rows), path, columns=len(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ckpt", type=Path, default=REPO / "outputs/demo/train/full/checkpoints/last.ckpt")
    parser.add_argument("--refine", action="store_true", help="GANFit++ refinement after regression (as make demo)")
    args = parser.parse_args()
    synthetic_figure(IMAGES / "photo_texture_synthetic.png")
    print(f"wrote {IMAGES / 'photo_texture_synthetic.png'}")
    if not args.ckpt.is_file():
        print(f"error: checkpoint {args.ckpt} does not exist (make demo trains it)", file=sys.stderr)
        return 1
    astronaut_figure(args.ckpt, args.refine, IMAGES / "photo_texture_astronaut.png")
    print(f"wrote {IMAGES / 'photo_texture_astronaut.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
