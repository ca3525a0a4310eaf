"""Photos (or face shards) to UV shards: detect, regress (and refine), take each face's UV texture from its photo
(:mod:`fastganfit.texture.photo_uv`) and write it with its confidence mask, source and fit quality into UV shards
that ``experiment=texture_gan model.masked_loss=true`` trains on.

Work is split into ``num_parts`` parts (input ``i`` goes to part ``i % num_parts``); part ``p`` writes into
``<output>/part-PPPPP-of-NNNNN/``: UV shards ``uv-*.tar`` with their ``manifest.json`` (``data/uv_shards.py``)
and, last, ``part.json`` (inputs, written, skipped inputs with reasons, seconds). A part with ``part.json`` is
finished and a rerun skips it; a part without one is redone from the start.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from fastganfit.data.face_shards import face_dataset
from fastganfit.data.uv_shards import NoSamplesError, UVSample, write_uv_shards
from fastganfit.fitting.inputs import resolve_inputs
from fastganfit.fitting.photo_texture import coverage_fraction, detail_crops, photometric_error
from fastganfit.fitting.pipeline import ImageOutcome, Reconstructor
from fastganfit.io.atomic import atomic_write
from fastganfit.texture.photo_uv import PhotoTextureExtractor

PART_RECORD = "part.json"
SUMMARY_NAME = "summary.json"
INPUT_FORMATS = ("photos", "face_shards")


@dataclass(frozen=True)
class UVShardOptions:
    """What makes a usable UV sample: ``min_coverage`` (the photo texture's confidence-weighted share of the UV map),
    ``max_landmark_error`` (mean distance of the fit's landmarks from the detected ones, a fraction of the crop side:
    misplaced geometry puts colours on the wrong texels) and ``max_photometric_error`` (mean absolute colour error of
    the fitted render on the face, [0, 1] units; ``None``: not checked, as a fit's colour error comes mostly from
    its light, which the photo texture need not share). ``max_per_shard`` samples per tar file, shard ``prefix``."""

    min_coverage: float = 0.1
    max_landmark_error: float = 0.04
    max_photometric_error: float | None = None
    max_per_shard: int = 1000
    prefix: str = "uv"

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_coverage < 1.0:
            raise ValueError(f"min_coverage must be in [0, 1), got {self.min_coverage}")
        if self.max_landmark_error <= 0:
            raise ValueError(f"max_landmark_error must be positive, got {self.max_landmark_error}")
        if self.max_photometric_error is not None and self.max_photometric_error <= 0:
            raise ValueError(f"max_photometric_error must be positive or None, got {self.max_photometric_error}")
        if self.max_per_shard < 1:
            raise ValueError(f"max_per_shard must be at least 1, got {self.max_per_shard}")


@dataclass(frozen=True)
class FaceItem:
    """One face ready to fit: its sample ``key``, ``source`` (file or shard sample), aligned ``crop [3, S, S]`` in
    [0, 1], ``landmarks [68, 2]`` (crop pixels) and, from a photo, the sharper ``detail [3, k S, k S]`` crop that
    colours are taken from (:func:`~fastganfit.fitting.photo_texture.detail_crops`)."""

    key: str
    source: str
    crop: torch.Tensor
    landmarks: torch.Tensor
    detail: torch.Tensor | None = None


@dataclass
class PartRecord:
    """What one part did: its ``part`` of ``num_parts``, ``inputs`` seen, ``written`` UV samples, ``skipped``
    inputs (``{"source", "reason"}``), ``seconds`` and the ``shards`` written."""

    part: int
    num_parts: int
    inputs: int = 0
    written: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    shards: list[str] = field(default_factory=list)


def part_folder(output: str | Path, part: int, num_parts: int) -> Path:
    """``<output>/part-PPPPP-of-NNNNN``, checking ``0 <= part < num_parts``."""
    if num_parts < 1 or not 0 <= part < num_parts:
        raise ValueError(f"part must be in [0, num_parts), num_parts >= 1; got part={part} num_parts={num_parts}")
    return Path(output) / f"part-{part:05d}-of-{num_parts:05d}"


def finished_part(folder: Path) -> PartRecord | None:
    """The record of a finished part folder, ``None`` when the part has not finished."""
    path = folder / PART_RECORD
    if not path.is_file():
        return None
    return PartRecord(**json.loads(path.read_text(encoding="utf-8")))


def photo_items(
    runner: Reconstructor,
    image: str | Sequence[str],
    part: int,
    num_parts: int,
    scale: int,
    skip: Callable[[str, str], None],
) -> Iterator[FaceItem]:
    """Faces of this part's photos (a file, folder, glob or list): detected, aligned (and re-cropped ``scale`` times
    larger for detail); failures go to ``skip``. Inputs that cannot be read as a whole (missing paths, non-image
    files) are reported by part 0."""
    resolved = resolve_inputs(image)
    if part == 0:
        for problem in [*resolved.failed, *resolved.skipped]:
            skip(problem.source, problem.reason)
    for item in resolved.images[part::num_parts]:
        outcome = ImageOutcome(str(item.path))
        faces = runner.prepare(item, outcome)  # every face of the photo (FitOptions.faces)
        if not faces:
            skip(outcome.source, outcome.error or "unusable")
            continue
        for prepared in faces:
            face = prepared.face
            crop = torch.from_numpy(np.array(face.crop)).permute(2, 0, 1).float() / 255.0
            detail = detail_crops([prepared.photo.image], [face.transform], runner.crop_size, scale)[0]
            landmarks = torch.from_numpy(np.array(face.landmarks)).float()
            yield FaceItem(prepared.key, outcome.source, crop, landmarks, detail)


def face_shard_items(
    urls: str | Sequence[str], part: int, num_parts: int, crop_size: int, skip: Callable[[str, str], None]
) -> Iterator[FaceItem]:
    """Faces of this part from face shards (aligned crops with landmarks: no detection); sample ``i`` of the
    shards (in order) belongs to part ``i % num_parts``. Crops of another size than ``crop_size`` go to ``skip``."""
    for index, sample in enumerate(face_dataset(urls, split_by_node=False, split_by_worker=False)):
        if index % num_parts != part:
            continue
        source = str(sample["metadata"].get("source", sample["key"]))
        side = sample["image"].shape[-1]
        if side != crop_size:
            skip(source, f"its crop is {side} px, the model's crops are {crop_size} px")
            continue
        yield FaceItem(sample["key"], source, sample["image"], sample["landmarks"])


def batches(items: Iterable[FaceItem], size: int) -> Iterator[list[FaceItem]]:
    """Consecutive lists of at most ``size`` items."""
    batch: list[FaceItem] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def uv_samples(
    runner: Reconstructor,
    extractor: PhotoTextureExtractor,
    items: Iterable[FaceItem],
    options: UVShardOptions,
    skip: Callable[[str, str], None],
    progress: Callable[[int], None],
) -> Iterator[UVSample]:
    """Fit each batch of ``items`` and yield ``(key, texture, mask, info)`` UV samples of the usable faces; faces
    whose fit or texture is not good enough (``options``) go to ``skip`` with the reason."""
    for batch in batches(items, runner.options.batch_size):
        device = runner.device
        crops = torch.stack([item.crop for item in batch]).to(device)
        landmarks = torch.stack([item.landmarks for item in batch]).to(device)
        try:
            params, _ = runner.fit_crops(crops, landmarks, [item.key for item in batch])
            views = runner.views(crops, params)
            details = [item.detail for item in batch]
            sharp = crops if any(d is None for d in details) else torch.stack(details).to(device)
            with torch.no_grad():
                photo = extractor(sharp, views.vertices, params.camera, params.light, views.texture)
        except Exception as error:  # the batch's faces fail together; the part goes on
            for item in batch:
                skip(item.source, f"fitting failed ({type(error).__name__}: {error})")
            progress(len(batch))
            continue
        errors = photometric_error(crops, views.render, views.mask).tolist()
        landmark_errors = ((views.landmarks - landmarks).norm(dim=-1).mean(-1) / crops.shape[-1]).tolist()
        for index, item in enumerate(batch):
            coverage = coverage_fraction(photo.confidence[index], extractor)
            quality = {"photometric_error": errors[index], "landmark_error": landmark_errors[index],
                       "coverage": coverage, "seen": coverage_fraction(photo.seen[index], extractor)}  # fmt: skip
            if coverage < options.min_coverage:
                skip(item.source, f"its photo texture covers {coverage:.1%} of the UV map (min_coverage "
                                  f"{options.min_coverage:.1%})")  # fmt: skip
            elif landmark_errors[index] > options.max_landmark_error:
                skip(item.source, f"the fit's landmark error {landmark_errors[index]:.3f} (of the crop side) is above "
                                  f"max_landmark_error {options.max_landmark_error}")  # fmt: skip
            elif options.max_photometric_error is not None and errors[index] > options.max_photometric_error:
                skip(item.source, f"the fit's photometric error {errors[index]:.3f} is above max_photometric_error "
                                  f"{options.max_photometric_error}")  # fmt: skip
            else:
                info = {"source": item.source, "quality": quality}
                yield item.key, photo.blended[index].cpu(), photo.confidence[index, 0].cpu().numpy(), info
        progress(len(batch))


def write_part(
    runner: Reconstructor,
    extractor: PhotoTextureExtractor,
    items: Callable[[Callable[[str, str], None]], Iterable[FaceItem]],
    folder: Path,
    record: PartRecord,
    options: UVShardOptions,
    log: Callable[[str], None],
) -> PartRecord:
    """Write one part's UV shards and, last, its ``part.json``; returns the record. ``items(skip)`` gives the part's
    faces and reports the inputs it cannot use to ``skip(source, reason)``."""
    started = time.perf_counter()

    def skip(source: str, reason: str) -> None:
        record.skipped.append({"source": source, "reason": reason})
        log(f"skipped {source}: {reason}")

    def counted(samples: Iterable[UVSample]) -> Iterator[UVSample]:
        for sample in samples:
            record.written += 1
            yield sample

    record.written = 0
    bar = tqdm(desc=folder.name, unit="face", file=sys.stderr, disable=not runner.options.progress)
    with bar:
        try:
            shards = write_uv_shards(
                counted(uv_samples(runner, extractor, items(skip), options, skip, bar.update)),
                folder, options.prefix, options.max_per_shard, overwrite=True,
            )  # fmt: skip
        except NoSamplesError:  # nothing usable: no shards (an interrupted earlier attempt's are removed)
            shards = []
            for stale in folder.glob(f"{options.prefix}-*.tar"):
                stale.unlink()
    record.inputs = record.written + len(record.skipped)
    record.shards = [path.name for path in shards]
    record.seconds = time.perf_counter() - started
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / PART_RECORD, "w") as handle:
        handle.write(json.dumps(asdict(record), indent=2) + "\n")
    return record


def summarise(output: str | Path, num_parts: int) -> dict[str, Any] | None:
    """When every part of ``output`` has finished: totals and every skipped input, written to ``summary.json``
    (and returned); ``None`` (and no ``summary.json``) otherwise."""
    records = [finished_part(part_folder(output, part, num_parts)) for part in range(num_parts)]
    if any(record is None for record in records):
        (Path(output) / SUMMARY_NAME).unlink(missing_ok=True)  # an earlier summary no longer describes the parts
        return None
    summary = {
        "num_parts": num_parts,
        "inputs": sum(record.inputs for record in records),
        "written": sum(record.written for record in records),
        "skipped": [entry for record in records for entry in record.skipped],
        "shards": [f"{part_folder('.', r.part, num_parts).name}/{name}" for r in records for name in r.shards],
    }
    with atomic_write(Path(output) / SUMMARY_NAME, "w") as handle:
        handle.write(json.dumps(summary, indent=2) + "\n")
    return summary
