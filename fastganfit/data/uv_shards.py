"""UV-texture shards: the webdataset tar files the texture GAN trains on.

Schema (one sample per key; keys hold no ``.``, ``/`` or ``\\``):

- ``KEY.png``: the UV texture, 8-bit RGB, square ``R x R``, row 0 = top of the UV map (v = 1);
- ``KEY.mask.png`` (optional): 8-bit grayscale validity mask of the same size, 255 = valid texel,
  0 = missing (in-between values are soft weights);
- ``KEY.json`` (optional): where the sample came from, e.g. ``{"source": ..., "quality": {...}}`` for textures
  taken from photos (``fastganfit-photo-uv-shards``); readers of textures ignore it.

Shards are ``{prefix}-000000.tar``, ``{prefix}-000001.tar``, ... in one folder, each written atomically;
``manifest.json`` beside them (written last: a folder without it is incomplete) lists the shards, their
sample counts and the resolution. One folder holds one shard set.

Command line: ``fastganfit-uv-shards input=DIR output=DIR [resolution=N] ...`` (:mod:`fastganfit.cli.uv_shards`,
options in ``conf/uv_shards.yaml``; see ``docs/textures.md``); :func:`convert_folder` does the work.
"""

from __future__ import annotations

import functools
import glob
import io
import json
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import webdataset as wds
from PIL import Image
from tqdm import tqdm
from webdataset.shardlists import expand_urls

from fastganfit.io.atomic import atomic_write
from fastganfit.io.images import image_to_uint8

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "fastganfit-uv-shards"
MANIFEST_VERSION = 1
TEXTURE_MEMBER = "png"
MASK_MEMBER = "mask.png"
INFO_MEMBER = "json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
KEY_FORBIDDEN = "./\\"
MASK_KEEP_THRESHOLD = 1.0 - 1e-4  # a resized texel stays valid only if every source texel it draws on is valid

ImageArray = torch.Tensor | np.ndarray
#: ``(key, texture, mask or None)``, optionally with a fourth item: a JSON-serialisable ``info`` dict.
UVSample = tuple[str, ImageArray, ImageArray | None] | tuple[str, ImageArray, ImageArray | None, dict[str, Any]]


class NoSamplesError(ValueError):
    """A shard set was asked for with no samples."""


# ---------------------------------------------------------------------------------------------- writing


def _texture_uint8(texture: ImageArray, key: str) -> np.ndarray:
    """``[3,R,R]`` float in [0, 1] (clipped) or ``[R,R,3]`` uint8 -> ``[R,R,3]`` uint8."""
    if isinstance(texture, torch.Tensor) and texture.dtype == torch.uint8:
        texture = texture.cpu().numpy()
    rgb = image_to_uint8(texture, name=f"sample {key!r} texture")
    if rgb.shape[0] != rgb.shape[1]:
        raise ValueError(f"sample {key!r}: texture is {rgb.shape[1]}x{rgb.shape[0]}, UV textures are square")
    return rgb


def _mask_uint8(mask: ImageArray, resolution: int, key: str) -> np.ndarray:
    """``[R,R]`` (or ``[1,R,R]``) bool, or float in [0, 1] (clipped) -> ``[R,R]`` uint8 0-255."""
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.shape != (resolution, resolution):
        raise ValueError(f"sample {key!r}: mask must be [{resolution}, {resolution}], got {list(array.shape)}")
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(
            f"sample {key!r}: mask must be bool or float in [0, 1], got {array.dtype} "
            "(convert 0/1 integer masks with .astype(bool), 0-255 masks by dividing by 255)"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"sample {key!r}: mask has non-finite values")
    return (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _png_bytes(array: np.ndarray) -> bytes:
    """PNG encoding of a uint8 ``[H, W, 3]`` (RGB) or ``[H, W]`` (grayscale) image."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _check_key(key: Any, seen: set[str]) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"sample key must be a non-empty string, got {key!r}")
    if any(char in key for char in KEY_FORBIDDEN):
        raise ValueError(f"sample key {key!r} must not contain any of {KEY_FORBIDDEN!r} (webdataset splits on them)")
    if key in seen:
        raise ValueError(f"sample key {key!r} occurs twice; keys must be unique")
    return key


def _encode_sample(sample: UVSample, resolution: int | None, seen: set[str]) -> tuple[dict[str, Any], int]:
    """One ``(key, texture, mask)`` -> a webdataset record, and the sample's resolution."""
    if not isinstance(sample, tuple | list) or len(sample) not in (3, 4):
        raise ValueError(f"samples must be (key, texture, mask-or-None[, info]) tuples, got {type(sample).__name__}")
    key = _check_key(sample[0], seen)
    rgb = _texture_uint8(sample[1], key)
    size = rgb.shape[0]
    if resolution is not None and size != resolution:
        raise ValueError(f"sample {key!r}: texture is {size}x{size}, earlier samples are {resolution}x{resolution}")
    record = {"__key__": key, TEXTURE_MEMBER: _png_bytes(rgb)}
    if sample[2] is not None:
        record[MASK_MEMBER] = _png_bytes(_mask_uint8(sample[2], size, key))
    if len(sample) == 4:
        if not isinstance(sample[3], dict):
            raise ValueError(f"sample {key!r}: info must be a dict, got {type(sample[3]).__name__}")
        record[INFO_MEMBER] = json.dumps(sample[3], sort_keys=True).encode("utf-8")
    seen.add(key)
    return record, size


def _existing_outputs(folder: Path, prefix: str) -> list[Path]:
    return sorted(folder.glob(f"{glob.escape(prefix)}-*.tar")) + [p for p in [folder / MANIFEST_NAME] if p.exists()]


def write_uv_shards(
    samples: Iterable[UVSample],
    output_dir: str | os.PathLike,
    prefix: str = "uv",
    max_per_shard: int = 1000,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``(key, texture, mask[, info])`` samples to ``{prefix}-000000.tar``, ... and ``manifest.json``.

    ``texture`` is ``[3,R,R]`` float in [0, 1] (values outside are clipped) or ``[R,R,3]`` uint8;
    ``mask`` is ``[R,R]`` bool or float in [0, 1], or ``None``; ``info`` (optional) a JSON-serialisable dict
    (``KEY.json``). Every sample must have the same R and a unique key. Samples are streamed; each shard is
    written to a temporary name and renamed when complete. Refuses a folder that already holds this prefix's
    shards or a manifest unless ``overwrite`` (then shards the new set does not reuse are deleted). Returns the
    shard paths.
    """
    if max_per_shard < 1:
        raise ValueError(f"max_per_shard must be at least 1, got {max_per_shard}")
    if not prefix or any(char in prefix for char in "/\\"):
        raise ValueError(f"prefix must be a non-empty file-name prefix, got {prefix!r}")
    folder = Path(output_dir)
    existing = _existing_outputs(folder, prefix)
    if existing and not overwrite:
        names = ", ".join(path.name for path in existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise FileExistsError(f"{folder} already holds UV shards ({names}); pass overwrite or choose another folder")
    if overwrite:
        (folder / MANIFEST_NAME).unlink(missing_ok=True)  # the folder reads as incomplete until the new one is done
    iterator = iter(samples)
    pending = next(iterator, None)
    if pending is None:
        raise NoSamplesError("no samples to write")
    seen: set[str] = set()
    resolution: int | None = None
    shards: list[Path] = []
    entries: list[dict[str, Any]] = []
    while pending is not None:
        path = folder / f"{prefix}-{len(shards):06d}.tar"
        count = masked = 0
        with atomic_write(path) as handle, wds.TarWriter(handle, encoder=False, mtime=0.0) as tar:
            while pending is not None and count < max_per_shard:
                record, resolution = _encode_sample(pending, resolution, seen)
                tar.write(record)
                count, masked = count + 1, masked + (MASK_MEMBER in record)
                pending = next(iterator, None)
        shards.append(path)
        entries.append({"name": path.name, "samples": count, "masked_samples": masked})
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "resolution": resolution,
        "samples": sum(entry["samples"] for entry in entries),
        "masked_samples": sum(entry["masked_samples"] for entry in entries),
        "members": {"texture": TEXTURE_MEMBER, "mask": MASK_MEMBER},
        "urls": f"{prefix}-{{000000..{len(shards) - 1:06d}}}.tar",
        "shards": entries,
    }
    with atomic_write(folder / MANIFEST_NAME, "w") as handle:
        handle.write(json.dumps(manifest, indent=2) + "\n")
    for stale in set(existing) - {*shards, folder / MANIFEST_NAME}:
        stale.unlink(missing_ok=True)
    return shards


def read_shard_manifest(folder: str | os.PathLike, expected_format: str, what: str) -> dict[str, Any]:
    """The ``manifest.json`` of a shard folder whose ``format`` must be ``expected_format``; ``what`` names
    the kind of shards in errors (e.g. ``"UV-shard"``)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: not a {what} folder, or its writing did not finish")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != expected_format:
        raise ValueError(f"{path}: not a {what} manifest (format {manifest.get('format')!r})")
    return manifest


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``manifest.json`` of a UV-shard folder (``shards``, ``samples``, ``resolution``, ...)."""
    return read_shard_manifest(folder, MANIFEST_FORMAT, "UV-shard")


# ---------------------------------------------------------------------------------------------- reading


def resize_texture(texture: torch.Tensor, resolution: int) -> torch.Tensor:
    """``[..., C, H, W]`` -> ``[..., C, resolution, resolution]`` (antialiased bilinear, clipped to [0, 1])."""
    if texture.shape[-2:] == (resolution, resolution):
        return texture
    flat = texture.reshape(-1, *texture.shape[-3:])
    resized = F.interpolate(flat, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return resized.clamp(0, 1).reshape(*texture.shape[:-2], resolution, resolution)


def resize_mask(mask: torch.Tensor, resolution: int) -> torch.Tensor:
    """``[..., 1, H, W]`` -> ``[..., 1, resolution, resolution]``, binary: a texel stays valid only when
    every source texel the texture filter draws on is valid, so missing colours never leak into it."""
    if mask.shape[-2:] == (resolution, resolution):
        return mask
    return (resize_texture(mask, resolution) >= MASK_KEEP_THRESHOLD).to(mask.dtype)


def _decode_image(data: bytes, mode: str, what: str) -> torch.Tensor:
    """PNG/JPG bytes -> ``[C, H, W]`` float in [0, 1] (C = 3 for ``"RGB"``, 1 for ``"L"``)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image.convert(mode))
    except Exception as error:
        raise ValueError(f"{what}: cannot decode image ({type(error).__name__}: {error})") from error
    tensor = torch.from_numpy(array.copy()).float().div(255)
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)


def decode_uv_sample(sample: dict[str, Any], resolution: int | None = None) -> dict[str, Any]:
    """A raw webdataset sample -> ``{"texture": [3,R,R] float in [0, 1], "mask": [1,R,R] float, "key": str}``.

    The mask is all ones when the sample has none; both are resized to ``resolution`` when given.
    Raises ``ValueError`` (naming shard and key) on a missing or undecodable member or mismatched sizes.
    """
    where = f"{sample.get('__url__', '?')}: sample {sample.get('__key__')!r}"
    if TEXTURE_MEMBER not in sample:
        members = sorted(name for name in sample if not name.startswith("__"))
        raise ValueError(f"{where}: no {TEXTURE_MEMBER!r} member (has {members})")
    texture = _decode_image(sample[TEXTURE_MEMBER], "RGB", f"{where}.{TEXTURE_MEMBER}")
    height, width = texture.shape[1:]
    if height != width:
        raise ValueError(f"{where}: texture is {width}x{height}, UV textures are square")
    if MASK_MEMBER in sample:
        mask = _decode_image(sample[MASK_MEMBER], "L", f"{where}.{MASK_MEMBER}")
        if mask.shape[1:] != texture.shape[1:]:
            raise ValueError(f"{where}: mask is {mask.shape[2]}x{mask.shape[1]}, texture is {width}x{height}")
    else:
        mask = torch.ones(1, height, width)
    if resolution is not None:
        texture, mask = resize_texture(texture, resolution), resize_mask(mask, resolution)
    return {"texture": texture, "mask": mask, "key": sample["__key__"]}


class CorruptSampleCounter:
    """A webdataset exception handler like ``wds.warn_and_continue`` that also counts: warns about a corrupt
    ``what`` (or an unreadable shard), counts it in ``count`` and lets the pipeline go on. Counts are per process
    (each DataLoader worker has its own)."""

    def __init__(self, what: str = "UV-texture sample") -> None:
        self.what = what
        self.count = 0

    def __call__(self, error: Exception) -> bool:
        self.count += 1
        warnings.warn(f"skipping corrupt {self.what} (#{self.count}): {error}", RuntimeWarning, stacklevel=2)
        return True


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


def expand_shard_pattern(url: str, what: str) -> list[str]:
    """One shard URL -> the shards it names: a local glob is expanded (sorted; no match is an error), a
    local file must exist, and remote URLs (``s3://``, ``pipe:``...) pass unchecked. ``what`` names the
    kind of shard in errors (e.g. ``"UV shard"``)."""
    if _is_local(url) and any(char in url for char in "*?["):
        matches = sorted(glob.glob(url))
        if not matches:
            raise FileNotFoundError(f"no {what}s match {url}")
        return matches
    if _is_local(url) and not Path(url).is_file():
        raise FileNotFoundError(f"{what} {url} does not exist")
    return [url]


def shard_urls(urls: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Shard URLs from a list, a glob (``data/uv-*.tar``), a brace pattern (``data/uv-{000000..000009}.tar``)
    or a shard folder (read from its ``manifest.json``). Local shards must exist."""
    if isinstance(urls, str | os.PathLike):
        text = os.fspath(urls)
        if Path(text).is_dir():
            return [str(Path(text) / entry["name"]) for entry in read_manifest(text)["shards"]]
        candidates = expand_urls(text)
    else:
        candidates = [os.fspath(url) for url in urls]
    resolved = [shard for url in candidates for shard in expand_shard_pattern(url, "UV shard")]
    if not resolved:
        raise ValueError("no UV shard URLs given")
    return resolved


def every_shard(urls: list[str]) -> list[str]:
    """A webdataset node splitter that gives every rank every shard (no split, and no error under DDP)."""
    return urls


def open_shards(
    shards: list[str],
    handler: Callable[[Exception], bool],
    shuffle_buffer: int,
    split_by_node: bool,
    split_by_worker: bool,
    empty_check: bool = True,
    resampled: bool = False,
) -> wds.WebDataset:
    """A ``webdataset.WebDataset`` over resolved ``shards``: shard order shuffled each pass when
    ``shuffle_buffer > 0``, split across ranks and DataLoader workers unless disabled, errors passed to
    ``handler``. ``empty_check=False`` lets a reader that got no shard yield nothing instead of failing.
    ``resampled``: every reader draws shards at random with replacement, endlessly (no split; cut epochs with
    ``with_epoch``)."""
    if resampled:
        return wds.WebDataset(
            shards, handler=handler, resampled=True, shardshuffle=False, empty_check=empty_check,
            nodesplitter=every_shard, workersplitter=every_shard,  # each reader draws its own shards
        )  # fmt: skip
    return wds.WebDataset(
        shards,
        handler=handler,
        shardshuffle=len(shards) if shuffle_buffer > 0 else False,
        detshuffle=True,  # a new shard order each pass (a seeded shuffle would repeat one order every epoch)
        nodesplitter=wds.split_by_node if split_by_node else every_shard,
        workersplitter=wds.split_by_worker if split_by_worker else None,
        empty_check=empty_check,
    )


def uv_texture_dataset(
    urls: str | os.PathLike | Sequence[str | os.PathLike],
    resolution: int | None = None,
    shuffle_buffer: int = 0,
    split_by_node: bool = True,
    split_by_worker: bool = True,
) -> wds.WebDataset:
    """A webdataset pipeline over UV shards yielding ``{"texture": [3,R,R], "mask": [1,R,R], "key": str}`` (and
    webdataset's ``__key__``, the same as ``key``).

    ``urls``: see :func:`shard_urls`. ``resolution`` resizes textures (antialiased bilinear) and masks
    (kept binary, see :func:`resize_mask`). ``shuffle_buffer > 0`` shuffles shard order and samples
    through a buffer of that size. Shards are split across distributed ranks and DataLoader workers
    unless disabled (then each rank or worker reads every shard). Corrupt samples are skipped with a
    ``RuntimeWarning`` and counted in the returned pipeline's ``corrupt_samples.count``.
    """
    handler = CorruptSampleCounter()
    dataset = open_shards(shard_urls(urls), handler, shuffle_buffer, split_by_node, split_by_worker)
    dataset = dataset.map(functools.partial(decode_uv_sample, resolution=resolution), handler=handler)
    dataset = dataset.shuffle(shuffle_buffer)
    dataset.corrupt_samples = handler
    return dataset


# ---------------------------------------------------------------------------------------------- folders of images


class UnusableImageError(ValueError):
    """An image file that cannot be used: unreadable, not square, a mask of another size."""


@dataclass(frozen=True)
class ConvertOptions:
    """Options of :func:`convert_folder` (the ``fastganfit-uv-shards`` command, ``conf/uv_shards.yaml``)."""

    input: Path
    output: Path
    mask_suffix: str = "_mask"
    resolution: int | None = None
    max_per_shard: int = 1000
    prefix: str = "uv"
    overwrite: bool = False
    progress: bool = True


@dataclass(frozen=True)
class ConvertReport:
    """What :func:`convert_folder` wrote: the shard paths, the manifest and the skipped files with their reasons."""

    shards: list[Path]
    manifest: dict[str, Any]
    skipped: list[tuple[Path, str]]


def pair_images(folder: Path, mask_suffix: str) -> tuple[list[tuple[Path, Path | None]], list[tuple[Path, str]]]:
    """Texture images in ``folder`` (PNG/JPG, not recursive, sorted) with their masks (``STEM{mask_suffix}.*``).

    Returns ``[(texture, mask or None)]`` and ``[(file, reason)]`` for masks that cannot be used.
    """
    images = sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
    textures: list[Path] = []
    masks: dict[str, Path] = {}
    rejected: list[tuple[Path, str]] = []
    for path in images:
        if mask_suffix and path.stem.endswith(mask_suffix) and len(path.stem) > len(mask_suffix):
            stem = path.stem[: -len(mask_suffix)]
            if stem in masks:
                rejected.append((path, f"{masks[stem].name} is already the mask of {stem!r}"))
            else:
                masks[stem] = path
        else:
            textures.append(path)
    stems = {path.stem for path in textures}
    orphans = [(path, f"no texture named {stem}.* for this mask") for stem, path in masks.items() if stem not in stems]
    return [(path, masks.get(path.stem)) for path in textures], rejected + orphans


def _read_image(path: Path, mode: str, what: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode))
    except Exception as error:
        raise UnusableImageError(f"cannot read {what} ({type(error).__name__}: {error})") from error


def _load_pair(
    texture_path: Path, mask_path: Path | None, resolution: int | None
) -> tuple[torch.Tensor | np.ndarray, torch.Tensor | None]:
    """Read a texture ``[R,R,3]`` uint8 (or ``[3,R,R]`` float when resized) and its mask ``[R,R]`` float.

    Raises :class:`UnusableImageError` saying why a file cannot be used.
    """
    rgb = _read_image(texture_path, "RGB", "image")
    height, width = rgb.shape[:2]
    if height != width:
        raise UnusableImageError(f"not square ({width}x{height}); UV textures are square")
    mask = None
    if mask_path is not None:
        mask = torch.from_numpy(_read_image(mask_path, "L", f"its mask {mask_path.name}").astype(np.float32) / 255)
        if tuple(mask.shape) != (height, width):
            raise UnusableImageError(
                f"its mask {mask_path.name} is {mask.shape[1]}x{mask.shape[0]}, the texture is {width}x{height}"
            )
    if resolution is None or resolution == height:
        return rgb, mask
    texture = resize_texture(torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255), resolution)
    return texture, None if mask is None else resize_mask(mask[None], resolution)[0]


def common_texture_size(paths: Iterable[Path]) -> int | None:
    """The most common side length among the square, readable images in ``paths`` (headers only)."""
    sizes: Counter[int] = Counter()
    for path in paths:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except Exception:  # unreadable files are reported when they are loaded
            continue
        if width == height:
            sizes[width] += 1
    return sizes.most_common(1)[0][0] if sizes else None


def folder_samples(
    pairs: Iterable[tuple[Path, Path | None]],
    skip: Callable[[Path, str], None],
    resolution: int | None = None,
    size: int | None = None,
) -> Iterator[UVSample]:
    """``(key, texture, mask)`` samples from texture/mask files; unusable ones are reported to ``skip``.

    Keys are file stems with ``.`` replaced by ``_``. ``resolution`` resizes every texture and mask;
    otherwise textures that are not ``size`` x ``size`` (when given) are skipped.
    """
    keys: dict[str, Path] = {}
    for texture_path, mask_path in pairs:
        key = texture_path.stem.replace(".", "_").replace("\\", "_")
        if not key.strip():
            skip(texture_path, "its name gives an empty sample key")
            continue
        if key in keys:
            skip(texture_path, f"its key {key!r} is already used by {keys[key].name}")
            continue
        try:
            texture, mask = _load_pair(texture_path, mask_path, resolution)
        except UnusableImageError as error:
            skip(texture_path, str(error))
            continue
        side = texture.shape[-1] if isinstance(texture, torch.Tensor) else texture.shape[0]
        if resolution is None and size is not None and side != size:
            skip(texture_path, f"it is {side}x{side}, most images are {size}x{size}; pass resolution=N to resize")
            continue
        keys[key] = texture_path
        yield key, texture, mask


def convert_folder(options: ConvertOptions) -> ConvertReport:
    """Write the texture images of ``options.input`` (with their masks) as UV shards in ``options.output``.

    Files that cannot be used are skipped with their reason (printed as they are met when ``options.progress``).
    Without ``options.resolution``, textures whose size is not the most common one are skipped. Raises
    ``NotADirectoryError`` for a missing input folder, :class:`NoSamplesError` when it holds no usable texture
    and ``FileExistsError`` for an output folder that already holds UV shards (unless ``options.overwrite``).
    """
    if not options.input.is_dir():
        raise NotADirectoryError(f"input folder {options.input} does not exist or is not a folder")
    pairs, rejected = pair_images(options.input, options.mask_suffix)
    if not pairs:
        raise NoSamplesError(f"no texture images ({'/'.join(IMAGE_SUFFIXES)}) in {options.input}")
    skipped: list[tuple[Path, str]] = []

    def skip(path: Path, reason: str) -> None:
        skipped.append((path, reason))
        if options.progress:
            tqdm.write(f"skipped {path}: {reason}", file=sys.stderr)

    for path, reason in rejected:
        skip(path, reason)
    size = None if options.resolution else common_texture_size(path for path, _ in pairs)
    with tqdm(pairs, desc="UV shards", unit="image", file=sys.stderr, disable=not options.progress) as progress:
        try:
            shards = write_uv_shards(
                folder_samples(progress, skip, options.resolution, size),
                options.output,
                prefix=options.prefix,
                max_per_shard=options.max_per_shard,
                overwrite=options.overwrite,
            )
        except NoSamplesError as error:
            raise NoSamplesError(f"none of the {len(pairs)} images in {options.input} could be used") from error
    return ConvertReport(shards, read_manifest(options.output), skipped)
