"""Build the portrait colour map (``model.colour_map: auto``) from the public-domain official portraits:

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python scripts/build_portrait_colour_map.py \
        --portraits ../shared/data/portraits --ckpt CKPT --output fastganfit/assets/colour_map_portraits.npz

Reads only ``pairs/A`` and ``single/`` (public domain; never ``pairs/B``, which scores it, or ``extra/``), colour
photos only, and the first ``--synthetic-faces`` white-lit faces of the synthetic shards ``--synthetic`` (the demo's
training set, rendered by ``make demo``), which weigh as much in all as the photos (``--synthetic-weight``).
``CKPT``: a FastGANFit checkpoint with the default texture model and lighting (the demo's: ``make demo``); it supplies
each face's geometry and the colour stage's start. Writes the ``.npz`` and, next to it,
``<name>.json`` with its provenance: the photos used and skipped, the synthetic faces, the share of the photos'
fitted values' variance the map explains, the command. See
docs/textures.md, :mod:`fastganfit.assetbuild.portrait_colour` and :mod:`fastganfit.regression.colour_map`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from fastganfit.assetbuild.portrait_colour import COLOUR_STEPS, ColourSamples, colour_samples, synthetic_samples
from fastganfit.assetbuild.portrait_texture import cached_samples, portrait_photos, write_provenance
from fastganfit.regression.checkpoint import load_fast_ganfit
from fastganfit.regression.colour_map import fit_colour_map


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--portraits", required=True, help="the shared portraits folder (with pairs/A and single/)")
    parser.add_argument("--ckpt", required=True, help="a FastGANFit checkpoint (geometry and the colour stage's start)")
    parser.add_argument("--output", required=True, help="the .npz to write")
    parser.add_argument("--steps", type=int, default=COLOUR_STEPS, help=f"colour-stage steps (default {COLOUR_STEPS})")
    parser.add_argument("--ridge", type=float, default=0.01, help="ridge penalty per sample (default 0.01)")
    parser.add_argument("--synthetic", default="data/synthetic_demo/train", help="synthetic face shards (true "
                        "texture and light; default: the demo's training set)")
    parser.add_argument("--synthetic-faces", type=int, default=300, help="white-lit synthetic faces (default 300)")
    parser.add_argument("--synthetic-weight", type=float, default=1.0, help="the synthetic faces' total weight over "
                        "the photos' (default 1: as much; 0: photos only)")
    parser.add_argument("--samples", default=None, help="also keep the photos' samples in this .pt file; reused (not "
                        "refitted) when it exists")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N photos (a quick try)")
    return parser.parse_args(argv)


def explained_share(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """``1 - sum of squared errors / sum of squared deviations from the mean`` over every column of ``[N, K]``."""
    residual = (predicted - target).square().sum()
    return round(float(1 - residual / (target - target.mean(0)).square().sum()), 3)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    root = Path(args.portraits)
    photos = portrait_photos(root)[: args.limit]
    module = load_fast_ganfit(args.ckpt, values={"colour_map": None})
    samples = cached_samples(args.samples, lambda: colour_samples(module, photos, root, args.steps), ColourSamples)
    synthetic = synthetic_samples(module.graph, args.synthetic, args.synthetic_faces)
    photo_count, synthetic_count = len(samples.keys), len(synthetic.colour)
    synthetic_each = args.synthetic_weight * photo_count / synthetic_count
    sample_weight = torch.cat([torch.ones(photo_count), torch.full((synthetic_count,), synthetic_each)])
    colour_map = fit_colour_map(
        torch.cat([samples.colour, synthetic.colour]), torch.cat([samples.texture, synthetic.texture]),
        torch.cat([samples.light, synthetic.light]), samples.lighting, samples.fingerprint, args.ridge, sample_weight,
    )
    texture, light = colour_map(samples.colour)
    colour_map.save(args.output)
    shares = {"texture": explained_share(texture, samples.texture), "light": explained_share(light, samples.light)}
    command = "python scripts/build_portrait_colour_map.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_provenance(
        args.output, command, photos, photo_count, samples.skipped,
        synthetic={"shards": args.synthetic, "faces": synthetic_count, "weight": args.synthetic_weight},
        colour_stage_steps=args.steps, ridge=args.ridge, texture_size=colour_map.texture_size,
        lighting=colour_map.lighting, explained_share_on_photos=shares, checkpoint=str(args.ckpt),
        seconds=round(time.perf_counter() - started, 1),
    )
    print(f"{args.output}: colour map of {photo_count} portraits ({len(samples.skipped)} photos skipped) and "
          f"{synthetic_count} synthetic faces; share of the photos' fitted values' variance it explains: {shares}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
