"""Colour benchmark: light and albedo on synthetic faces with known colour, and render-vs-photo colour on the two
package test photos (skimage's astronaut, matplotlib's Grace Hopper). Writes the 'colour' section of BENCHMARKS.md.

Each ``--run LABEL CKPT [OVERRIDE ...]`` is a checkpoint with GANFit++ settings (conf/fit/refine.yaml plus dotted
overrides, e.g. ``stages.full.loss.light_chroma=0``). For each run and method (regression, regression + GANFit++):
the synthetic benchmark's albedo delta-E, light chroma error and render delta-E (benchmark=synthetic, ``--n``
faces: half white light, half coloured), and the photos' render delta-E (CIEDE2000 of the render against the photo
over the rendered face, in the aligned crop at the render size).

Usage: python bench/colour.py --run before OLD.ckpt stages.full.loss.light_chroma=0 --run after NEW.ckpt [--n 16]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import torch
from common import write_section
from hydra.utils import instantiate
from matplotlib import cbook
from PIL import Image
from skimage import data

from fastganfit.benchmarks.colour import masked_delta_e
from fastganfit.benchmarks.synthetic import SyntheticBenchmark
from fastganfit.fitting.faces import crop_largest_face, graph_crop_template
from fastganfit.fitting.optimise import refine, regress
from fastganfit.fitting.package_config import packaged_fit_config
from fastganfit.fitting.reconstructor import FaceReconstructor
from fastganfit.fitting.settings import FitSettings
from fastganfit.perception.landmarks import DlibLandmarker


def refine_settings(overrides: list[str]) -> FitSettings:
    """fit.py's refinement (conf/fit/refine.yaml) with dotted ``overrides`` of it (``stages.full.steps=20``,
    ``~stages.full.lr_scales.light``, ``+...``)."""
    prefixed = [re.sub(r"^([~+]*)", r"\1refinement.", override) for override in overrides]
    config = packaged_fit_config(prefixed)
    return instantiate(config.refinement, _convert_="all")


def photos() -> dict[str, np.ndarray]:
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        grace = np.asarray(Image.open(file).convert("RGB"))
    return {"astronaut": data.astronaut(), "Grace Hopper": grace}


def photo_delta_e(ckpt: str, settings: FitSettings) -> dict[str, dict[str, float]]:
    """``{photo: {method: render delta-E}}`` for regression and regression + GANFit++."""
    module = FaceReconstructor.from_checkpoint(ckpt, device="cpu").regressor
    graph = module.graph
    landmarker, template = DlibLandmarker(), graph_crop_template(graph, graph.crop_size)
    result = {}
    for name, image in photos().items():
        face = crop_largest_face(image, landmarker, template, graph.crop_size, 40)
        crops = torch.from_numpy(np.array(face.crop)).permute(2, 0, 1)[None].float() / 255.0
        landmarks = torch.from_numpy(np.array(face.landmarks))[None].float()
        regressed = regress(module, crops, landmarks)
        refined, _ = refine(graph, crops, landmarks, regressed, settings)
        target = graph.target(crops, landmarks)
        scores = {}
        for method, params in (("regression", regressed), ("regression + GANFit++", refined)):
            with torch.no_grad():
                render = graph.render(params, target).render
            scores[method] = float(masked_delta_e(render.image, target.image, render.mask)[0])
        result[name] = scores
    return result


def kept_rows(labels: list[str]) -> list[str]:
    """The table rows of runs ``labels`` in BENCHMARKS.md's current colour section (``ValueError`` if one has none)."""
    text = (Path(__file__).resolve().parent.parent / "BENCHMARKS.md").read_text()
    section = text.split("<!-- bench:colour -->", 1)[-1].split("<!-- /bench:colour -->", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and line.split("|")[1].strip() in labels]
    missing = sorted(set(labels) - {row.split("|")[1].strip() for row in rows})
    if missing:
        raise ValueError(f"--keep {missing}: no rows of these runs in BENCHMARKS.md's colour section")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", nargs="+", action="append", required=True, metavar="LABEL CKPT [OVERRIDE]")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--keep", nargs="*", default=[], metavar="LABEL",
                        help="keep these runs' rows from BENCHMARKS.md's colour section instead of rerunning them")
    args = parser.parse_args()
    kept = kept_rows(args.keep)
    torch.set_num_threads(1)
    header = ("| run | method | albedo ΔE (white light) | albedo ΔE (coloured) | light chroma error % (white) | "
              "light chroma % (coloured) | render ΔE (synthetic) | render ΔE astronaut | render ΔE Grace Hopper |")
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    for run in args.run:
        if len(run) < 2:
            parser.error("--run needs a LABEL and a CKPT")
        label, ckpt, overrides = run[0], run[1], run[2:]
        settings = refine_settings(overrides)
        report = SyntheticBenchmark(ckpt, refine=settings, n=args.n, batch_size=8, icp_max_iterations=20,
                                    num_examples=0, device="cpu", progress=False).run()
        photo = photo_delta_e(ckpt, settings)
        for method in ("regression", "regression + GANFit++"):
            details = report.details[method]
            albedo, chroma = np.array(details["albedo_delta_e"]), np.array(details["light_chroma_error_percent"])
            half = args.n - args.n // 2
            rows.append(
                f"| {label} | {method} | {albedo[:half].mean():.1f} | {albedo[half:].mean():.1f} | "
                f"{chroma[:half].mean():.1f} | {chroma[half:].mean():.1f} | "
                f"{np.nanmean(details['render_delta_e']):.1f} | {photo['astronaut'][method]:.1f} | "
                f"{photo['Grace Hopper'][method]:.1f} |"
            )
            print(rows[-1], flush=True)
    rows[2:2] = kept
    runs = "; ".join(f"{run[0]}: `{run[1]}`" + (f" with `{' '.join(run[2:])}`" if run[2:] else "") for run in args.run)
    body = "\n".join([
        f"{args.n} held-out synthetic faces (benchmark=synthetic, seed 2026; the second half lit by coloured light of",
        "known colour) and the two package photos. ΔE: CIEDE2000 (skimage.color); albedo over the front skin texels of",
        "the UV albedo; render against the input over the rendered face; light chroma error: 100 |c/mean(c) -",
        "c_true/mean(c_true)| of the light's mean colour on a white surface (fastganfit/benchmarks/colour.py).",
        f"Runs: {runs}." + (f" Rows of {', '.join(args.keep)} kept from this section's previous run (same command)."
                            if args.keep else ""),
        "",
        *rows,
    ])
    command = "python bench/colour.py " + " ".join("--run " + " ".join(run) for run in args.run) + f" --n {args.n}"
    command += f" --keep {' '.join(args.keep)}" if args.keep else ""
    write_section("colour", body, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
