"""Build the real-skin PCA texture prior (``texture=pca_portraits``) from the public-domain official portraits:

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python scripts/build_portrait_texture_prior.py \
        --portraits ../shared/data/portraits --ckpt CKPT --output fastganfit/assets/texture_pca_portraits.npz

Reads only ``pairs/A`` and ``single/`` (public domain; never ``pairs/B`` or ``extra/``). ``CKPT`` is any FastGANFit
checkpoint: it supplies each face's geometry, camera and light (the demo's: ``make demo``). Writes the ``.npz``
(float16 mean and basis) and, next to it, ``<name>.json`` with its provenance: the photos used and skipped, the
explained variance, the command. See docs/textures.md and :mod:`fastganfit.assetbuild.portrait_texture`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from fastganfit.assetbuild.portrait_texture import (
    PhotoTextures,
    TexturePCA,
    cached_samples,
    components_for,
    extract_photo_textures,
    portrait_photos,
    save_texture_pca,
    weighted_pca,
    write_provenance,
)
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.texture.uv_layout import rasterize_uv_layout


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--portraits", required=True, help="the shared portraits folder (with pairs/A and single/)")
    parser.add_argument("--ckpt", required=True, help="a FastGANFit checkpoint (geometry, camera, light)")
    parser.add_argument("--output", required=True, help="the .npz to write")
    parser.add_argument("--resolution", type=int, default=128, help="side of the UV textures (default 128)")
    parser.add_argument("--explained", type=float, default=0.9, help="share of the variance to keep (default 0.9)")
    parser.add_argument("--max-components", type=int, default=60, help="at most this many components (default 60)")
    parser.add_argument("--textures", default=None, help="also keep the photo textures in this .pt file; reused "
                        "(not re-extracted) when it exists")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N photos (a quick try)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    torch.manual_seed(0)
    root = Path(args.portraits)
    photos = portrait_photos(root)[: args.limit]
    textures = cached_samples(args.textures, lambda: extract_photo_textures(args.ckpt, photos, root, args.resolution),
                              PhotoTextures)  # fmt: skip
    coverage = rasterize_uv_layout(MorphableModel.ict(), args.resolution).coverage
    count = len(textures.keys)
    full = weighted_pca(textures.albedo, textures.weight, coverage, min(args.max_components, count - 1))
    components = components_for(full.explained, args.explained)
    pca = TexturePCA(full.mean, full.basis[:components], full.variances[:components], full.explained[:components])
    save_texture_pca(pca, args.output)
    command = "python scripts/build_portrait_texture_prior.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_provenance(
        args.output, command, photos, count, textures.skipped, resolution=args.resolution, components=components,
        explained_variance=round(float(pca.explained[-1]), 4), checkpoint=str(args.ckpt),
        mean_skin_rgb=[round(float(v), 4) for v in pca.mean[:, args.resolution // 2, args.resolution // 2]],
        seconds=round(time.perf_counter() - started, 1),
    )
    print(f"{args.output}: {components} components explain {float(pca.explained[-1]):.1%} of the variance of "
          f"{count} photo textures ({len(textures.skipped)} photos skipped)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
