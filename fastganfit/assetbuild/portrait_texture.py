"""The real-skin PCA texture prior (``texture=pca_portraits``) built from the public-domain official portraits
(``portraits/pairs/A`` and ``portraits/single``; never ``pairs/B`` or ``extra``: see their README).

1. :func:`portrait_photos`: the photos, in name order.
2. :func:`extract_photo_textures`: each photo's face is detected and regressed by a FastGANFit checkpoint (its
   geometry, camera and light); its photo UV texture (:mod:`fastganfit.texture.photo_uv`: the light's brightness
   divided out, visibility and angle confidence, skin trust against hair, background, glasses frames and
   highlights, mirror completion) gives an albedo ``[3, R, R]`` and a weight ``[1, R, R]`` per face.
3. :func:`weighted_pca`: a confidence-weighted PCA with missing texels filled by EM (each face's untrusted texels
   replaced by their low-rank reconstruction, repeated), so texels no photo shows get the mean's pull-push fill.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fastganfit.fitting.photo_texture import detail_scale, photo_texture_extractor
from fastganfit.fitting.photo_uv_shards import batches, photo_items
from fastganfit.fitting.pipeline import FitOptions, Reconstructor
from fastganfit.io.atomic import atomic_write
from fastganfit.perception.landmarks import DlibLandmarker
from fastganfit.regression.checkpoint import load_fast_ganfit
from fastganfit.texture.photo_uv import pull_push_fill

Samples = TypeVar("Samples")

#: The public-domain folders of the shared portraits (README: a derived model may ship).
PUBLIC_DOMAIN_FOLDERS = ("pairs/A", "single")
#: Faces whose fitted landmarks are further than this (fraction of the crop side) from the detected are dropped.
MAX_LANDMARK_ERROR = 0.04
#: Faces whose trusted texels cover less than this share of the UV map are dropped.
MIN_COVERAGE = 0.15
#: A texel's mean is its weighted mean where the summed weight reaches this many faces' worth; less, it is blended
#: towards the pull-push fill of its neighbours.
MEAN_SUPPORT = 5.0
#: Photos whose :func:`colour_score` is below this are greyscale and say nothing about skin colour.
MIN_COLOUR_SCORE = 6.0


@dataclass(frozen=True)
class PhotoTextures:
    """``keys`` (photo paths relative to the portraits folder), ``albedo [N, 3, R, R]`` and ``weight [N, 1, R, R]``
    (in [0, 1]: how much each texel is trusted), and the ``skipped`` photos with their reasons."""

    keys: list[str]
    albedo: Tensor
    weight: Tensor
    skipped: list[tuple[str, str]]


@dataclass(frozen=True)
class TexturePCA:
    """``mean [3, R, R]``, ``basis [K, 3, R, R]`` (orthonormal rows), ``variances [K]`` and ``explained [K]`` (the
    cumulative share of the completed data's variance the first k components explain)."""

    mean: Tensor
    basis: Tensor
    variances: Tensor
    explained: Tensor


def colour_score(path: Path) -> float:
    """Mean absolute deviation of a photo's channels from their mean (0-255 units) on a 64x80 thumbnail: below
    :data:`MIN_COLOUR_SCORE` the photo is greyscale (the portraits' README measures it the same way)."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB").resize((64, 80), Image.BILINEAR), dtype=np.float64)
    return float(np.abs(pixels - pixels.mean(-1, keepdims=True)).mean())


def portrait_photos(portraits: str | Path) -> list[Path]:
    """The photos of the public-domain folders of ``portraits`` (:data:`PUBLIC_DOMAIN_FOLDERS`), in name order."""
    root = Path(portraits)
    folders = [root / name for name in PUBLIC_DOMAIN_FOLDERS]
    missing = [str(folder) for folder in folders if not folder.is_dir()]
    if missing:
        raise FileNotFoundError(f"portraits: missing folder(s) {missing} (expected the shared portraits: pairs/A, "
                                "single)")  # fmt: skip
    photos = sorted(path for folder in folders for path in folder.glob("*.jpg"))
    if not photos:
        raise FileNotFoundError(f"portraits: no .jpg photos in {[str(folder) for folder in folders]}")
    return photos


def skip_recorder(skipped: list[tuple[str, str]], root: str | Path) -> Callable[[str, str], None]:
    """A ``skip(source, reason)`` callback appending ``(source relative to root, reason)`` to ``skipped``."""

    def skip(source: str, reason: str) -> None:
        skipped.append((str(Path(source).relative_to(root)), reason))

    return skip


def colour_photos(photos: Sequence[Path], skip: Callable[[str, str], None]) -> list[str]:
    """The ``photos`` in colour (:func:`colour_score` at least :data:`MIN_COLOUR_SCORE`); greyscale ones go to
    ``skip``."""
    coloured = []
    for path in photos:
        score = colour_score(path)
        if score < MIN_COLOUR_SCORE:
            skip(str(path), f"greyscale (colour score {score:.1f} < {MIN_COLOUR_SCORE})")
        else:
            coloured.append(str(path))
    return coloured


def cached_samples(path: str | Path | None, make: Callable[[], Samples], kind: Callable[..., Samples]) -> Samples:
    """``kind(**torch.load(path))`` when ``path`` names a file (samples kept by an earlier build), else ``make()``,
    kept in ``path`` when one is given (a dataclass of tensors and lists)."""
    if path is not None and Path(path).is_file():
        return kind(**torch.load(path))
    samples = make()
    if path is not None:
        torch.save(dict(vars(samples)), path)
    return samples


def write_provenance(output: str | Path, command: str, photos: Sequence[Path], used: int,
                     skipped: Sequence[tuple[str, str]], **fields: object) -> dict:  # fmt: skip
    """Write ``<output>.json``, an asset's provenance (the command, the photos found, used and skipped with their
    reasons, and ``fields``), atomically; returns the record."""
    record = {
        "command": command,
        "photos": {
            "folders": list(PUBLIC_DOMAIN_FOLDERS),
            "found": len(photos),
            "used": used,
            "skipped": [{"photo": key, "reason": reason} for key, reason in skipped],
        },
        **fields,
    }
    with atomic_write(Path(output).with_suffix(".json"), "w") as handle:
        handle.write(json.dumps(record, indent=2) + "\n")
    return record


def extract_photo_textures(
    ckpt: str | Path,
    photos: Sequence[Path],
    root: str | Path,
    resolution: int = 128,
    batch_size: int = 8,
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> PhotoTextures:
    """Regress every photo's face with the checkpoint ``ckpt`` and take its cleaned photo texture (module doc)."""
    module = load_fast_ganfit(str(ckpt), torch.device(device))
    graph = module.graph
    options = FitOptions(start="regressor", batch_size=batch_size, progress=False, faces="largest")
    runner = Reconstructor(graph, DlibLandmarker(detector="hog+cnn"), options, log, module)
    extractor = photo_texture_extractor(graph, resolution, light="brightness")
    skipped: list[tuple[str, str]] = []
    keys, albedos, weights = [], [], []
    skip = skip_recorder(skipped, root)
    coloured = colour_photos(photos, skip)
    items = photo_items(runner, coloured, 0, 1, detail_scale(resolution, runner.crop_size), skip)
    for index, batch in enumerate(batches(items, batch_size)):
        crops = torch.stack([item.crop for item in batch]).to(graph.device)
        landmarks = torch.stack([item.landmarks for item in batch]).to(graph.device)
        with torch.no_grad():
            params, _ = runner.fit_crops(crops, landmarks, [item.key for item in batch])
            views = runner.views(crops, params)
            details = torch.stack([item.detail for item in batch]).to(graph.device)
            photo = extractor(details, views.vertices, params.camera, params.light, views.texture)
        errors = (views.landmarks - landmarks).norm(dim=-1).mean(-1) / crops.shape[-1]
        coverage = photo.confidence.mean((1, 2, 3)) / extractor.coverage.mean()
        for item, error, share, albedo, weight in zip(batch, errors.tolist(), coverage.tolist(), photo.albedo,
                                                      photo.confidence, strict=True):  # fmt: skip
            key = str(Path(item.source).relative_to(root))
            if error > MAX_LANDMARK_ERROR:
                skipped.append((key, f"landmark error {error:.3f} of the crop side > {MAX_LANDMARK_ERROR}"))
            elif share < MIN_COVERAGE:
                skipped.append((key, f"trusted texels cover {share:.1%} of the UV map < {MIN_COVERAGE:.0%}"))
            else:
                keys.append(key)
                albedos.append(albedo.clamp(0.0, 1.0).cpu())
                weights.append(weight.cpu())
        log(f"photo textures: {len(keys)} kept, {len(skipped)} skipped after {(index + 1) * batch_size} faces")
    if not keys:
        raise RuntimeError(f"portraits: no usable photo texture among {len(photos)} photos")
    return PhotoTextures(keys, torch.stack(albedos), torch.stack(weights), skipped)


def weighted_mean(albedo: Tensor, weight: Tensor, coverage: Tensor) -> Tensor:
    """``[3, R, R]``: the weighted mean of ``albedo [N, 3, R, R]`` (weights ``[N, 1, R, R]``); texels with less
    than :data:`MEAN_SUPPORT` faces' worth of weight are blended towards the pull-push fill of their neighbours,
    and texels outside the UV layout's ``coverage [1, R, R]`` are filled the same way."""
    total = weight.sum(0)
    mean = (albedo * weight).sum(0) / total.clamp(min=1e-8)
    support = (total / MEAN_SUPPORT).clamp(max=1.0) * coverage
    return pull_push_fill(mean[None], support[None])[0]


def principal_axes(centred: Tensor, components: int) -> tuple[Tensor, Tensor]:
    """Variances ``[k]`` and orthonormal axes ``[k, D]`` of the ``k = components`` largest principal components of
    ``centred [N, D]`` rows (N << D), from the eigenvectors of the N x N Gram matrix: one matrix product instead of
    an SVD of the N x D data (about 10x faster at N = 541, D = 49,152, measured)."""
    values, vectors = torch.linalg.eigh(centred @ centred.T)
    values, vectors = values.flip(0)[:components].clamp(min=0.0), vectors.flip(1)[:, :components]
    axes = (vectors.T @ centred) / values.sqrt().clamp(min=1e-12)[:, None]
    return values / (centred.shape[0] - 1), axes


def weighted_pca(albedo: Tensor, weight: Tensor, coverage: Tensor, components: int, iterations: int = 10) -> TexturePCA:
    """PCA of ``albedo [N, 3, R, R]`` with texel ``weight [N, 1, R, R]`` in [0, 1] (0: missing): missing texels start
    at the weighted mean (:func:`weighted_mean`) and are replaced, ``iterations`` times, by their rank-``components``
    reconstruction (EM for PCA with missing data); texels outside ``coverage [1, R, R]`` are the mean's, basis 0."""
    count = albedo.shape[0]
    if not 1 <= components < count:
        raise ValueError(f"weighted_pca: components must be in [1, {count - 1}], got {components}")
    data = albedo.double().flatten(1)
    keep = weight.double().expand_as(albedo).flatten(1) * coverage.double().expand_as(albedo[0]).flatten()
    mean = weighted_mean(albedo.double(), weight.double(), coverage.double()).flatten()
    completed = keep * data + (1.0 - keep) * mean
    for _ in range(iterations):
        mean = completed.mean(0)
        _, rows = principal_axes(completed - mean, components)
        reconstruction = mean + ((completed - mean) @ rows.T) @ rows
        completed = keep * data + (1.0 - keep) * reconstruction
    mean = completed.mean(0)
    variances, rows = principal_axes(completed - mean, count - 1)
    explained = variances.cumsum(0) / variances.sum()
    shape = albedo.shape[1:]
    return TexturePCA(
        mean=mean.view(shape).float(),
        basis=rows[:components].view(components, *shape).float(),
        variances=variances[:components].float(),
        explained=explained[:components].float(),
    )


def components_for(explained: Tensor, share: float) -> int:
    """The fewest components whose cumulative ``explained [K]`` share reaches ``share`` (all of them if none)."""
    reached = torch.nonzero(explained >= share)
    return int(reached[0, 0]) + 1 if len(reached) else explained.shape[0]


def save_texture_pca(pca: TexturePCA, path: str | Path) -> None:
    """Write ``pca`` as a float16 ``.npz`` that :meth:`~fastganfit.texture.pca.PCATexture.from_npz` reads (the
    variances in float32: float16 would round the smallest), atomically (a temporary name, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(
        staging,
        mean=pca.mean.clamp(0.0, 1.0).numpy().astype(np.float16),
        basis=pca.basis.numpy().astype(np.float16),
        variances=pca.variances.numpy().astype(np.float32),
        explained=pca.explained.numpy().astype(np.float32),
    )
    staging.replace(path)


def sample_spread(pca: TexturePCA, region: Tensor) -> float:
    """Root-mean-square colour spread (in [0, 1] units) over ``region [1, R, R]`` texels of the model."""
    region = region.flatten().bool()
    per_texel = (pca.basis.flatten(2)[:, :, region].square() * pca.variances.view(-1, 1, 1)).sum(0)
    return math.sqrt(float(per_texel.mean()))
