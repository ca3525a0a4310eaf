"""The samples of the portrait colour map (``model.colour_map``, :mod:`fastganfit.regression.colour_map`), from the
public-domain official portraits (``pairs/A`` and ``single``, colour photos only; never ``pairs/B`` or ``extra``).

Each face is detected and regressed by a FastGANFit module (without a colour map: its heads and the exposure
match), then GANFit++'s ``colour`` stage (conf/fit/refine.yaml: texture and light against the pixels, with the light
colour and intensity priors) runs alone for ``steps`` steps from there. A sample is the face's colour features (what
the regressor's colour heads read) and the fitted texture latent and light: what the map learns to predict.

:func:`synthetic_samples` adds faces the map must not get wrong: synthetic faces under white light with their true
texture and light (the demo's training shards), so that the map keeps the split of a face's colour into albedo and
light brightness that the regressor learnt (fitted on the portraits alone it made the synthetic faces' albedo worse;
BENCHMARKS.md, section colour).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from torch import Tensor

from fastganfit.assetbuild.portrait_texture import colour_photos, skip_recorder
from fastganfit.data.face_shards import face_dataset
from fastganfit.fitting.optimise import refine, regress
from fastganfit.fitting.package_config import packaged_fit_config
from fastganfit.fitting.photo_uv_shards import batches, photo_items
from fastganfit.fitting.pipeline import FitOptions, Reconstructor
from fastganfit.fitting.settings import FitSettings
from fastganfit.perception.landmarks import DlibLandmarker
from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.regression.colour_map import texture_fingerprint
from fastganfit.regression.module import FastGANFitModule
from fastganfit.regression.regressor import face_colour_features
from fastganfit.render.lighting import light_tint

#: GANFit++'s colour stage alone (conf/fit/refine.yaml), with this many steps by default.
COLOUR_STEPS = 100
#: Synthetic faces whose light is tinted by more than this (percent, :func:`~fastganfit.render.lighting.light_tint`)
#: are left out: the portraits are white-balanced, and a linear map of the skin's mean colour cannot
#: tell a tint from a skin tone.
MAX_SYNTHETIC_TINT = 3.0


@dataclass(frozen=True)
class ColourSamples:
    """``keys`` (photo paths relative to the portraits folder), the colour features ``colour [N, 6]``, the fitted
    ``texture [N, Kt]`` and ``light [N, Kl]``, the ``lighting`` class name, the texture model's ``fingerprint
    [Kt + 1, 3]`` and the ``skipped`` photos with their reasons."""

    keys: list[str]
    colour: Tensor
    texture: Tensor
    light: Tensor
    lighting: str
    fingerprint: Tensor
    skipped: list[tuple[str, str]]


@dataclass(frozen=True)
class SyntheticSamples:
    """Synthetic faces' colour features ``colour [N, 6]`` with their true ``texture [N, Kt]`` and ``light [N, Kl]``."""

    colour: Tensor
    texture: Tensor
    light: Tensor


def synthetic_samples(
    graph: FaceReconstructionGraph, urls: str | Sequence[str], count: int, batch_size: int = 16
) -> SyntheticSamples:
    """The first ``count`` faces of the synthetic shards ``urls`` lit by white light (tint at most
    :data:`MAX_SYNTHETIC_TINT`), with their colour features as ``graph`` reads them and their true texture and light;
    ``ValueError`` when the shards' texture or light sizes are not the graph's."""
    sizes = graph.sizes
    colours, textures, lights = [], [], []
    kept = 0

    def flush(batch: list[dict]) -> None:
        crops = torch.stack([sample["image"] for sample in batch]).to(graph.device)
        landmarks = torch.stack([sample["landmarks"] for sample in batch]).to(graph.device)
        with torch.no_grad():
            target = graph.target(crops, landmarks)
            colours.append(face_colour_features(target.image, target.landmarks).cpu())

    batch: list[dict] = []
    for sample in face_dataset(urls, split_by_node=False, split_by_worker=False):
        params = sample.get("params")
        if params is None:
            raise ValueError(f"synthetic shards {urls}: sample {sample['__key__']} has no true parameters")
        texture, light = params["texture"], params["light"]
        if texture.shape != (sizes.texture,) or light.shape != (sizes.light,):
            raise ValueError(f"synthetic shards {urls}: texture [{texture.shape[0]}] and light [{light.shape[0]}], the "
                             f"model's are [{sizes.texture}] and [{sizes.light}]")  # fmt: skip
        if light_tint(graph.renderer.lighting, light[None].to(graph.device))[0] > MAX_SYNTHETIC_TINT:
            continue
        textures.append(texture)
        lights.append(light)
        batch.append(sample)
        kept += 1
        if len(batch) == batch_size:
            flush(batch)
            batch = []
        if kept == count:
            break
    if batch:
        flush(batch)
    if kept < count:
        raise ValueError(f"synthetic shards {urls}: {kept} faces under white light, {count} asked for")
    return SyntheticSamples(torch.cat(colours), torch.stack(textures), torch.stack(lights))


def colour_stage_settings(steps: int = COLOUR_STEPS) -> FitSettings:
    """GANFit++'s refinement with only its ``colour`` stage, ``steps`` long."""
    overrides = ["refinement.stages.align.steps=0", "refinement.stages.full.steps=0",
                 f"refinement.stages.colour.steps={steps}"]  # fmt: skip
    return instantiate(packaged_fit_config(overrides).refinement, _convert_="all")


def colour_samples(
    module: FastGANFitModule,
    photos: Sequence[Path],
    root: str | Path,
    steps: int = COLOUR_STEPS,
    batch_size: int = 8,
    log: Callable[[str], None] = print,
) -> ColourSamples:
    """Regress every colour photo's face with ``module`` (loaded without a colour map: ``load_fast_ganfit(ckpt,
    values={"colour_map": None})``), fit its texture and light with the colour stage (module doc)."""
    if module.colour_map is not None:
        raise ValueError("colour_samples: the module has a colour map; load it with values={'colour_map': None}")
    graph = module.graph
    settings = colour_stage_settings(steps)
    options = FitOptions(start="regressor", batch_size=batch_size, progress=False, faces="largest")
    runner = Reconstructor(graph, DlibLandmarker(detector="hog+cnn"), options, log, module)
    skipped: list[tuple[str, str]] = []
    skip = skip_recorder(skipped, root)
    coloured = colour_photos(photos, skip)
    keys, colours, textures, lights = [], [], [], []
    for batch in batches(photo_items(runner, coloured, 0, 1, 1, skip), batch_size):
        crops = torch.stack([item.crop for item in batch]).to(graph.device)
        landmarks = torch.stack([item.landmarks for item in batch]).to(graph.device)
        fitted, _ = refine(graph, crops, landmarks, regress(module, crops, landmarks), settings)
        with torch.no_grad():
            target = graph.target(crops, landmarks)
            colours.append(face_colour_features(target.image, target.landmarks).cpu())
        textures.append(fitted.texture.detach().cpu())
        lights.append(fitted.light.detach().cpu())
        keys += [str(Path(item.source).relative_to(root)) for item in batch]
        log(f"colour samples: {len(keys)} faces fitted, {len(skipped)} photos skipped")
    if not keys:
        raise RuntimeError(f"portraits: no usable colour photo among {len(photos)} photos")
    fingerprint = texture_fingerprint(graph.texture, graph.sizes.texture)
    return ColourSamples(keys, torch.cat(colours), torch.cat(textures), torch.cat(lights),
                         type(graph.renderer.lighting).__name__, fingerprint, skipped)  # fmt: skip
