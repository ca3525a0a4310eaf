"""Render-vs-photo skin colour on real photos: the shared portraits (pairs/A, pairs/B) and the package photos
(skimage's astronaut, matplotlib's Grace Hopper, and both made greyscale). Writes the 'portrait_colour' section of
BENCHMARKS.md.

For each ``--run LABEL CKPT`` and method (regression; regression + GANFit++, conf/fit/refine.yaml), per photo: the
CIEDE2000 of the render against the photo over the visible skin (the UV skin below the hairline, lips, brows and
eyes excluded, rendered with the fit and eroded by one pixel), the render's skin chroma on greyscale photos, the
fitted light's tint (100 |c / mean(c) - 1|) and, across the colour photos, Spearman's rho between the fitted albedo's
skin lightness (median L* of the model texture over the UV skin) and the photo's (median L* over the skin pixels), and
the same for the skin's hue (median CIELAB hue angle).

With two or more runs, each later run is also compared with the first photo by photo (paired rows).

Usage: python bench/portrait_colour.py --portraits ../shared/data/portraits --n 32 --run before OLD.ckpt \
    --run after NEW.ckpt [colour_map=null ...] [--refine stages.full.steps=40 ...] [--model exposure_match=false ...] \
    [--regression-only]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from colour import photos as package_photos
from colour import refine_settings
from common import write_section
from PIL import Image
from scipy.stats import spearmanr

from fastganfit.assetbuild.portrait_texture import MIN_COLOUR_SCORE, colour_score
from fastganfit.benchmarks.colour import chroma, hue, light_chroma, lightness, masked_delta_e, visible_skin_texels
from fastganfit.data.prepare import UnusableInputError
from fastganfit.fitting.faces import crop_largest_face, graph_crop_template
from fastganfit.fitting.optimise import refine, regress
from fastganfit.perception.landmarks import DlibLandmarker
from fastganfit.regression.checkpoint import load_fast_ganfit
from fastganfit.texture.procedural import ProceduralTexture

METHODS = ("regression", "regression + GANFit++")


def select(portraits: Path, n: int) -> dict[str, list[tuple[str, np.ndarray, bool]]]:
    """``{set: [(name, uint8 photo, greyscale)]}``: ``n`` photos spread evenly over each of pairs/A and pairs/B (in
    name order), the package photos and the package photos made grey."""
    sets = {}
    for folder in ("pairs/A", "pairs/B"):
        files = sorted((portraits / folder).glob("*.jpg"))
        chosen = files[:: max(1, len(files) // n)][:n]
        sets[folder] = [(path.name, np.asarray(Image.open(path).convert("RGB")), colour_score(path) < MIN_COLOUR_SCORE)
                        for path in chosen]  # fmt: skip
    package = package_photos()
    sets["package"] = [(name, image, False) for name, image in package.items()]
    grey = [(f"{name} (grey)", np.repeat(np.asarray(Image.fromarray(image).convert("L"))[..., None], 3, -1), True)
            for name, image in package.items()]  # fmt: skip
    sets["package (grey)"] = grey
    return sets


def measure(ckpt: str, settings: object, sets: dict, values: dict[str, object] | None = None,
            methods: tuple[str, ...] = METHODS) -> dict[str, dict[str, dict[str, np.ndarray]]]:  # fmt: skip
    """``{set: {method: {metric: [N]}}}`` for one checkpoint (metrics: delta_e, render_chroma, photo_chroma,
    light_chroma, albedo_lightness, photo_lightness, albedo_hue, photo_hue, grey); ``values``: model config keys set
    before building (``{"exposure_match": False}``); ``methods``: some of :data:`METHODS` (GANFit++ runs only when
    asked for)."""
    module = load_fast_ganfit(ckpt, torch.device("cpu"), values=values)
    graph = module.graph
    landmarker, template = DlibLandmarker(detector="hog+cnn"), graph_crop_template(graph, graph.crop_size)
    procedural = ProceduralTexture(graph.model, graph.texture.resolution)
    skin_uv = visible_skin_texels(procedural, graph.model).float()
    results = {}
    for name, photos in sets.items():
        crops, landmarks, grey = [], [], []
        for _, image, is_grey in photos:
            try:
                face = crop_largest_face(image, landmarker, template, graph.crop_size, 40)
            except UnusableInputError:
                continue
            crops.append(torch.from_numpy(np.array(face.crop)).permute(2, 0, 1).float() / 255.0)
            landmarks.append(torch.from_numpy(np.array(face.landmarks)).float())
            grey.append(is_grey)
        crops, landmarks = torch.stack(crops), torch.stack(landmarks)
        per_method: dict[str, list[dict[str, np.ndarray]]] = {method: [] for method in methods}
        for start in range(0, len(crops), 8):
            batch_crops, batch_landmarks = crops[start : start + 8], landmarks[start : start + 8]
            regressed = regress(module, batch_crops, batch_landmarks)
            fitted = {"regression": regressed}
            if METHODS[1] in methods:
                fitted[METHODS[1]], _ = refine(graph, batch_crops, batch_landmarks, regressed, settings)
            target = graph.target(batch_crops, batch_landmarks)
            for method, params in fitted.items():
                with torch.no_grad():
                    result = graph.render(params, target)
                    masks = graph.renderer(result.vertices, skin_uv.expand(len(batch_crops), 3, -1, -1),
                                           params.camera, params.light).albedo[:, :1]  # fmt: skip
                    skin = -F.max_pool2d(-(masks * result.render.mask), 3, 1, 1)
                    texture = result.texture.clamp(0, 1)
                    uv_skin = skin_uv.expand(len(batch_crops), 1, -1, -1)
                    per_method[method].append({
                        "delta_e": masked_delta_e(result.render.image, target.image, skin),
                        "render_chroma": chroma(result.render.image, skin),
                        "photo_chroma": chroma(target.image, skin),
                        "light_chroma": light_chroma(graph.renderer.lighting, params.light),
                        "albedo_lightness": lightness(texture, uv_skin),
                        "photo_lightness": lightness(target.image, skin),
                        "albedo_hue": hue(texture, uv_skin),
                        "photo_hue": hue(target.image, skin),
                    })  # fmt: skip
        results[name] = {
            method: {key: np.concatenate([part[key] for part in parts]) for key in parts[0]} | {"grey": np.array(grey)}
            for method, parts in per_method.items()
        }
        print(name, {method: float(np.nanmedian(values["delta_e"])) for method, values in results[name].items()},
              flush=True)  # fmt: skip
    return results


def quartiles(values: np.ndarray) -> str:
    """``median (25th-75th, 90th)`` of the finite ``values``."""
    finite = values[np.isfinite(values)]
    low, median, high, top = np.percentile(finite, [25, 50, 75, 90])
    return f"{median:.1f} ({low:.1f}-{high:.1f}, {top:.1f})"


def kept_rows(labels: list[str]) -> list[str]:
    """The table rows of runs ``labels`` in BENCHMARKS.md's current portrait_colour section."""
    text = (Path(__file__).resolve().parent.parent / "BENCHMARKS.md").read_text()
    section = text.split("<!-- bench:portrait_colour -->", 1)[-1].split("<!-- /bench:portrait_colour -->", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and line.split("|")[1].strip() in labels]
    missing = sorted(set(labels) - {row.split("|")[1].strip() for row in rows})
    if missing:
        raise ValueError(f"--keep {missing}: no rows of these runs in BENCHMARKS.md's portrait_colour section")
    return rows


def paired_rows(measured: list[tuple[str, dict]], methods: tuple[str, ...]) -> list[str]:
    """Table rows comparing each run after the first with the first, photo by photo (empty for one run)."""
    if len(measured) < 2:
        return []
    rows = ["| run | against | method | photos | lower ΔE | median per-photo difference | difference of medians "
            "(95 % interval) |", "|---|---|---|---|---|---|---|"]
    generator = np.random.default_rng(0)
    first_label, first = measured[0]
    for label, results in measured[1:]:
        for method in methods:
            for name in results:
                base, new = first[name][method]["delta_e"], results[name][method]["delta_e"]
                if len(base) < 2:
                    continue
                resamples = generator.integers(0, len(base), (2000, len(base)))
                differences = np.median(new[resamples], axis=1) - np.median(base[resamples], axis=1)
                low, high = np.percentile(differences, [2.5, 97.5])
                rows.append(f"| {label} | {first_label} | {method} | {name} ({len(base)}) | "
                            f"{np.mean(new < base):.0%} | {np.median(new - base):+.2f} | "
                            f"{np.median(new) - np.median(base):+.2f} ({low:+.2f} to {high:+.2f}) |")  # fmt: skip
                print(rows[-1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--portraits", default=os.environ.get("FASTGANFIT_SHARED", "../shared") + "/data/portraits")
    parser.add_argument("--n", type=int, default=32, help="photos of each of pairs/A and pairs/B")
    parser.add_argument("--run", nargs="+", action="append", required=True, metavar="LABEL CKPT [KEY=VALUE]",
                        help="a run: a label, a checkpoint and model config values of this run only (as --model)")
    parser.add_argument("--refine", action="append", default=[], metavar="OVERRIDE",
                        help="an override of GANFit++'s settings (conf/fit/refine.yaml), e.g. stages.full.steps=40")
    parser.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                        help="a model config value of every run, e.g. exposure_match=false (YAML values)")
    parser.add_argument("--regression-only", action="store_true", help="skip GANFit++ (e.g. for --n 400)")
    parser.add_argument("--keep", nargs="*", default=[], metavar="LABEL",
                        help="keep these runs' rows from BENCHMARKS.md's section instead of rerunning them")
    args = parser.parse_args()
    kept = kept_rows(args.keep)
    torch.set_num_threads(1)
    portraits = Path(args.portraits)
    if not (portraits / "pairs").is_dir():
        parser.error(f"--portraits {portraits}: no pairs/ folder there (the shared portraits)")
    sets = select(portraits, args.n)
    settings = refine_settings(args.refine)
    for run in args.run:
        if len(run) < 2:
            parser.error("--run needs a LABEL and a CKPT")
    if any("=" not in item for item in args.model + [value for run in args.run for value in run[2:]]):
        parser.error("--model and --run values must be KEY=VALUE, e.g. exposure_match=false")
    model_values = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.model)}
    header = ("| run | method | photos | skin ΔE median (25th-75th, 90th) | light tint % median | "
              "greyscale photos: render chroma (photo) | albedo-photo skin lightness Spearman rho | "
              "albedo-photo skin hue Spearman rho |")
    rows = [header, "|" + "---|" * (header.count("|") - 1), *kept]
    methods = METHODS[:1] if args.regression_only else METHODS
    measured = []
    for label, ckpt, *run_overrides in args.run:
        run_values = model_values | {key: yaml.safe_load(value)
                                     for key, value in (item.split("=", 1) for item in run_overrides)}  # fmt: skip
        results = measure(ckpt, settings, sets, run_values, methods)
        measured.append((label, results))
        for method in methods:
            pooled: dict[str, list[float]] = {key: [] for key in ("albedo_lightness", "photo_lightness", "albedo_hue",
                                                                  "photo_hue")}  # fmt: skip
            for name, by_method in results.items():
                values = by_method[method]
                grey = values["grey"]
                grey_text = (f"{np.nanmedian(values['render_chroma'][grey]):.1f} "
                             f"({np.nanmedian(values['photo_chroma'][grey]):.1f}), {grey.sum()} photos"
                             if grey.any() else "-")  # fmt: skip
                rho = {"lightness": "-", "hue": "-"}
                if name.startswith("pairs"):
                    for key in pooled:
                        pooled[key] += list(values[key][~grey])
                    for kind in rho:
                        fitted, photo = values[f"albedo_{kind}"][~grey], values[f"photo_{kind}"][~grey]
                        rho[kind] = f"{spearmanr(fitted, photo)[0]:.2f}"
                rows.append(f"| {label} | {method} | {name} ({len(grey)}) | {quartiles(values['delta_e'])} | "
                            f"{np.nanmedian(values['light_chroma']):.1f} | {grey_text} | {rho['lightness']} | "
                            f"{rho['hue']} |")  # fmt: skip
                print(rows[-1], flush=True)
            rho_lightness = spearmanr(pooled["albedo_lightness"], pooled["photo_lightness"])[0]
            rho_hue = spearmanr(pooled["albedo_hue"], pooled["photo_hue"])[0]
            rows.append(f"| {label} | {method} | pairs/A + pairs/B colour ({len(pooled['photo_hue'])}) | | | | "
                        f"{rho_lightness:.2f} | {rho_hue:.2f} |")  # fmt: skip
            print(rows[-1], flush=True)
    paired = paired_rows(measured, methods)
    body = "\n".join([
        "Render against photo over the visible skin (CIEDE2000, skimage.color; lips, brows, eyes and the forehead",
        "above 20 mm over the brows excluded), in the aligned crop at the render size. Photos spread evenly",
        "over pairs/A (public domain, the prior's own photos) and pairs/B (other photos of the same people, never",
        "used to build it; some greyscale), and the package photos, also made grey. Light tint: 100 |c / mean(c) - 1|",
        "of the light's mean colour on a white surface (0: white). Chroma: median CIELAB chroma over the skin pixels.",
        "Spearman rho: the fitted model texture's median skin L* (hue angle) against the photo's, over the colour",
        "portraits.",
        "",
        *rows,
        *(["", "Paired against the first run (the same photos and crops): the share of photos whose ΔE is lower, the",
           "median of the per-photo differences and a bootstrap 95 % interval of the difference of the medians (2000",
           "resamples of the photos).", "", *paired] if paired else []),
    ])
    runs = " ".join("--run " + " ".join(run) for run in args.run)
    options = "".join(f" --refine '{override}'" for override in args.refine)
    options += "".join(f" --model {item}" for item in args.model)
    options += " --regression-only" if args.regression_only else ""
    command = f"python bench/portrait_colour.py --n {args.n} {runs}{options}" + (
        f" --keep {' '.join(args.keep)}" if args.keep else "")
    write_section("portrait_colour", body, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
