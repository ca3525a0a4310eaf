"""Photos to UV shards (Hydra): ``python -m fastganfit.cli.photo_uv_shards input=PHOTOS output=DIR ckpt=PATH
[refine=true] [part=I num_parts=N] [workers=K]`` (console script ``fastganfit-photo-uv-shards``).

Runs detection, regression (+ GANFit++ with ``refine=true``; GANFit from the mean face with ``ckpt=null``) and
the photo UV-texture extraction over a folder, a glob, a list or face shards (``input_format=face_shards``), and
writes UV shards with masks, source ids and fit quality (see :mod:`fastganfit.fitting.photo_uv_shards`).
``part=I num_parts=N`` runs one part (one machine, e.g. ``part=$SLURM_ARRAY_TASK_ID``); ``part=null`` runs every
part here, ``workers`` at a time. Finished parts are skipped, so a rerun resumes. Exit status: 0 when the parts
ran (inputs may have been skipped: see each ``part.json``), 1 when no texture at all was written, 2 on a bad option.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from fastganfit.cli import CONFIG_DIR
from fastganfit.cli.exit_status import exit_status
from fastganfit.cli.reconstructor import build_reconstructor
from fastganfit.fitting.photo_texture import LIGHT_MODES, detail_scale, photo_texture_extractor
from fastganfit.fitting.photo_uv_shards import (
    INPUT_FORMATS,
    SUMMARY_NAME,
    PartRecord,
    UVShardOptions,
    face_shard_items,
    finished_part,
    part_folder,
    photo_items,
    summarise,
    write_part,
)
from fastganfit.fitting.pipeline import default_log

NAME = "photo_uv_shards"


def shard_options(cfg: DictConfig) -> UVShardOptions:
    """The :class:`UVShardOptions` of a configuration (checked)."""
    photometric = cfg.max_photometric_error
    return UVShardOptions(
        min_coverage=float(cfg.min_coverage),
        max_landmark_error=float(cfg.max_landmark_error),
        max_photometric_error=None if photometric is None else float(photometric),
        max_per_shard=int(cfg.max_per_shard),
    )


def check(cfg: DictConfig) -> None:
    """Raise ``ValueError`` naming the first bad option."""
    for key in ("input", "output"):
        if OmegaConf.is_missing(cfg, key):
            raise ValueError(f"give {key}=... (input: photos or face shards; output: the UV-shard folder)")
    if cfg.photo_light not in LIGHT_MODES:
        raise ValueError(f"photo_light must be one of {LIGHT_MODES}, got {cfg.photo_light!r}")
    if cfg.input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {cfg.input_format!r}")
    if int(cfg.num_parts) < 1 or int(cfg.workers) < 1:
        raise ValueError(f"num_parts and workers must be at least 1, got {cfg.num_parts} and {cfg.workers}")
    if cfg.part is not None:
        part_folder(cfg.output, int(cfg.part), int(cfg.num_parts))
    shard_options(cfg)


def run_part(
    config: dict[str, Any], part: int, overrides: Sequence[str] = (), threads: int | None = None
) -> PartRecord:
    """Run part ``part`` of the (resolved) configuration ``config``; a finished part is read back, not redone.
    ``overrides``: the command line's (component values apply on top of a checkpoint's components, as in fit.py)."""
    cfg = OmegaConf.create(config)
    num_parts = int(cfg.num_parts)
    folder = part_folder(cfg.output, part, num_parts)
    if (record := finished_part(folder)) is not None:
        default_log(f"{folder}: finished earlier ({record.written} textures), skipped")
        return record
    if threads is not None:
        torch.set_num_threads(threads)
    photos = cfg.input_format == "photos"
    reconstructor = build_reconstructor(cfg, overrides, detect=photos)
    runner = reconstructor.runner(bool(cfg.refine), detect=photos)
    graph = reconstructor.graph
    extractor = photo_texture_extractor(graph, int(cfg.resolution), str(cfg.photo_light))
    source = OmegaConf.to_container(cfg.input) if OmegaConf.is_list(cfg.input) else str(cfg.input)
    if cfg.input_format == "photos":
        scale = detail_scale(extractor.resolution, runner.crop_size)
        items = partial(photo_items, runner, source, part, num_parts, scale)
    else:
        items = partial(face_shard_items, source, part, num_parts, graph.crop_size)
    record = write_part(runner, extractor, items, folder, PartRecord(part, num_parts), shard_options(cfg), default_log)
    default_log(f"{folder}: {record.written} of {record.inputs} inputs written, {len(record.skipped)} skipped")
    return record


def run(cfg: DictConfig, overrides: Sequence[str] = ()) -> list[PartRecord]:
    """Run the part ``cfg.part``, or every part (``cfg.workers`` processes at a time); returns their records. When
    every part has finished (here or elsewhere), ``summary.json`` lists them and every skipped input. ``overrides``:
    the command line's (:func:`run_part`)."""
    config = OmegaConf.to_container(cfg, resolve=True)
    parts = [int(cfg.part)] if cfg.part is not None else list(range(int(cfg.num_parts)))
    workers = min(int(cfg.workers), len(parts))
    if workers == 1:
        records = [run_part(config, part, overrides) for part in parts]
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch or thread state
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            records = list(pool.map(partial(run_part, config, overrides=list(overrides), threads=threads), parts))
    summarise(cfg.output, int(cfg.num_parts))
    return records


@exit_status
@hydra.main(config_path=str(CONFIG_DIR), config_name=NAME, version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        check(cfg)
    except ValueError as error:
        print(f"{NAME}: error: {error}", file=sys.stderr)
        sys.exit(2)
    try:
        records = run(cfg, HydraConfig.get().overrides.task)
    except (FileNotFoundError, ValueError, InstantiationException) as error:
        print(f"{NAME}: error: {error}", file=sys.stderr)
        sys.exit(2)
    written = sum(record.written for record in records)
    summary = Path(cfg.output) / SUMMARY_NAME
    where = f"; all parts done: {summary}" if summary.is_file() else ""
    print(
        f"{NAME}: {written} UV textures from {sum(r.inputs for r in records)} inputs in {len(records)} part(s) "
        f"into {cfg.output}; {sum(len(r.skipped) for r in records)} skipped{where}"
    )
    sys.exit(0 if written else 1)


if __name__ == "__main__":
    main()
