"""Skin colours of texture models against real photo textures. Writes the 'texture_colours' section of BENCHMARKS.md.

For the photo UV textures of ``--uv`` (UV shards, e.g. the public-domain portraits' from
``python -m fastganfit.cli.photo_uv_shards``) and ``--n`` random textures of each model (the real-skin PCA prior, the
shipped synthetic texture GAN, and each ``--gan LABEL PATH``: an exported generator or a texture-GAN checkpoint):
the median CIELAB L*, a*, b* of each texture over the front skin texels (lips, brows, eyes, ears, neck and scalp
left out; for photo textures only the texels their confidence mask trusts), summarised by the 5th, 50th and 95th
percentile over the textures, and the mean of the per-texel standard deviation of L* across textures (how varied the
skin is, texel by texel).

Usage: python bench/texture_colours.py --uv 'outputs/portrait_uv/part-*/uv-*.tar' \
    --gan portraits outputs/texture_gan/portraits.pt [--n 256]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import write_section
from skimage.color import rgb2lab

from fastganfit.benchmarks.colour import front_skin_texels
from fastganfit.data.uv_shards import uv_texture_dataset
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.texture.generator import TextureGenerator, load_default_texture_prior
from fastganfit.texture.pca import load_portrait_texture_prior
from fastganfit.texture.procedural import ProceduralTexture

RESOLUTION = 128


def skin_statistics(textures: torch.Tensor, weights: torch.Tensor) -> dict[str, np.ndarray]:
    """Per texture ``[N]`` median L*, a*, b* over the texels where ``weights [N, 1, R, R]`` exceed 0.5, and the
    per-texel L* ``[N, R, R]`` (NaN outside) of ``textures [N, 3, R, R]`` in [0, 1]."""
    lab = rgb2lab(textures.clamp(0, 1).permute(0, 2, 3, 1).double().numpy(), channel_axis=-1)
    inside = (weights[:, 0] > 0.5).numpy()
    medians = np.array([np.median(lab[i][inside[i]], axis=0) if inside[i].any() else [np.nan] * 3
                        for i in range(len(lab))])  # fmt: skip
    lightness = np.where(inside, lab[..., 0], np.nan)
    return {"L": medians[:, 0], "a": medians[:, 1], "b": medians[:, 2], "texel_L": lightness}


def photo_textures(urls: str, skin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The photo textures of the UV shards ``urls`` at :data:`RESOLUTION` and their trusted skin ``[N, 1, R, R]``."""
    textures, weights = [], []
    for sample in uv_texture_dataset(urls, resolution=RESOLUTION, shuffle_buffer=0):
        textures.append(sample["texture"])
        weights.append(sample["mask"] * skin[0])
    return torch.stack(textures), torch.stack(weights)


def percentiles(values: np.ndarray) -> str:
    """``median (5th to 95th percentile)`` of ``values``."""
    low, median, high = np.nanpercentile(values, [5, 50, 95])
    return f"{median:.1f} ({low:.1f} to {high:.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uv", required=True, help="UV shards of photo textures (files, a glob or a brace pattern)")
    parser.add_argument("--gan", nargs=2, action="append", default=[], metavar=("LABEL", "PATH"))
    parser.add_argument("--n", type=int, default=256, help="random textures per model (default 256)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    skin = front_skin_texels(ProceduralTexture(MorphableModel.ict(), RESOLUTION)).float()
    generator = torch.Generator().manual_seed(0)
    photos, photo_skin = photo_textures(args.uv, skin)
    sources = {f"photo textures ({len(photos)})": (photos, photo_skin)}
    pca = load_portrait_texture_prior(RESOLUTION)
    with torch.no_grad():
        sources["PCA prior (default)"] = (pca(torch.randn(args.n, pca.latent_dim, generator=generator)), None)
        sources["synthetic GAN (texture=gan_default)"] = (load_default_texture_prior().sample(args.n, generator), None)
        for label, path in args.gan:
            sources[label] = (TextureGenerator.load(path).sample(args.n, generator), None)
    header = "| textures | skin L* | skin a* | skin b* | texel L* spread across textures |"
    rows = [header, "|---|---|---|---|---|"]
    for name, (textures, weights) in sources.items():
        textures = torch.nn.functional.interpolate(textures, size=(RESOLUTION, RESOLUTION), mode="bilinear",
                                                   align_corners=False, antialias=True)  # fmt: skip
        weights = skin.expand(len(textures), 1, -1, -1) if weights is None else weights
        stats = skin_statistics(textures, weights)
        spread = np.nanmean(np.nanstd(stats["texel_L"], axis=0))
        rows.append(f"| {name} | {percentiles(stats['L'])} | {percentiles(stats['a'])} | {percentiles(stats['b'])} | "
                    f"{spread:.1f} |")  # fmt: skip
        print(rows[-1], flush=True)
    body = "\n".join([
        "Median CIELAB over each texture's front skin texels (lips, brows, eyes, ears, neck and scalp left out; photo",
        "textures: only the texels their confidence mask trusts), as median (5th to 95th percentile) over the",
        f"textures; {args.n} random textures per model (z ~ N(0, I), no truncation). Texel L* spread: the standard",
        "deviation of L* across textures at each texel, averaged over the skin texels.",
        "",
        *rows,
    ])
    command = f"python bench/texture_colours.py --uv '{args.uv}'" + "".join(
        f" --gan {label} {path}" for label, path in args.gan) + f" --n {args.n}"
    write_section("texture_colours", body, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
