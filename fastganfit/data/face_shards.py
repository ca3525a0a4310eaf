"""Face-sample shards: the webdataset tar files of aligned face crops (real or synthetic) the regressor trains on.

The members of a sample are described in :mod:`fastganfit.data.schema`. Shards are
``{prefix}-000000.tar``, ``{prefix}-000001.tar``, ... in one folder, each written atomically (a temporary
name renamed when the shard is complete) and byte-for-byte reproducible (fixed tar member times and
order, fixed zip times in ``params.npz``, sorted JSON keys). ``manifest.json`` beside them, written
last by :meth:`FaceShardWriter.write_manifest`, lists the shards and their sample counts plus whatever
the producer adds (seed and settings for synthetic faces, skipped inputs for ``prepare``).
"""

from __future__ import annotations

import contextlib
import glob
import io
import itertools
import json
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import torch
import webdataset as wds
from PIL import Image
from webdataset.shardlists import expand_urls

from fastganfit.data.schema import IMAGE_MEMBER, LANDMARKS_MEMBER, METADATA_MEMBER, PARAMS_MEMBER, VERTICES_MEMBER
from fastganfit.data.uv_shards import (
    CorruptSampleCounter,
    _check_key,
    _decode_image,
    expand_shard_pattern,
    open_shards,
    read_shard_manifest,
)
from fastganfit.io.atomic import atomic_write
from fastganfit.io.images import image_to_uint8
from fastganfit.io.landmark_overlays import save_landmark_grid

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "fastganfit-face-shards"
MANIFEST_VERSION = 1
JPEG_QUALITY = 95
NUM_LANDMARKS = 68
PARAM_NAMES = ("shape", "expression", "texture", "camera", "light")
REQUIRED_METADATA = ("source", "box", "crop_transform", "landmarker")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest zip timestamp: params.npz bytes do not depend on the clock


# ---------------------------------------------------------------------------------------------- encoding


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """A ``np.load``-able ``.npz`` (stored, sorted names, fixed timestamps: identical input -> identical bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, _npy_bytes(arrays[name]))
    return buffer.getvalue()


def _jpeg_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray | torch.Tensor):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _float_array(value: Any, name: str) -> np.ndarray:
    """``value`` (array-like or tensor) as a finite float32 array; ``name`` names it in errors."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: not a numeric array ({error})") from error
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def _check_metadata(metadata: Any, crop_size: int, where: str) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        raise TypeError(f"{where}: metadata must be a dict, got {type(metadata).__name__}")
    missing = [name for name in REQUIRED_METADATA if name not in metadata]
    if missing:
        raise ValueError(f"{where}: metadata lacks {missing} (required: {list(REQUIRED_METADATA)})")
    metadata = dict(metadata)
    transform = _float_array(metadata["crop_transform"], f"{where}: metadata crop_transform")
    if transform.shape != (2, 3):
        raise ValueError(f"{where}: metadata crop_transform must be a 2x3 affine, got shape {list(transform.shape)}")
    box = _float_array(metadata["box"], f"{where}: metadata box")
    if box.shape != (4,):
        raise ValueError(f"{where}: metadata box must be [x0, y0, x1, y1], got shape {list(box.shape)}")
    if metadata.setdefault("crop_size", crop_size) != crop_size:
        raise ValueError(f"{where}: metadata crop_size {metadata['crop_size']} differs from the image's {crop_size}")
    return metadata


def encode_face_sample(
    key: str,
    image: np.ndarray,
    landmarks: np.ndarray,
    metadata: Mapping[str, Any],
    params: Mapping[str, np.ndarray] | None = None,
    vertices: np.ndarray | None = None,
) -> dict[str, Any]:
    """Validate one face sample and encode it as a webdataset record ``{"__key__": key, member: bytes}``.

    ``image`` uint8 ``[S, S, 3]`` (or float ``[3, S, S]`` in [0, 1]); ``landmarks [68, 2]`` crop pixels;
    ``metadata`` with ``source``, ``box``, ``crop_transform``, ``landmarker`` (``crop_size`` is filled in
    or checked); ``params`` (all of :data:`PARAM_NAMES`, 1-D) and ``vertices [V, 3]`` mm come together.
    """
    where = f"sample {key!r}"
    rgb = image_to_uint8(image, name=f"{where} image")
    if rgb.shape[0] != rgb.shape[1]:
        raise ValueError(f"{where}: image is {rgb.shape[1]}x{rgb.shape[0]}, face crops are square")
    points = _float_array(landmarks, f"{where}: landmarks")
    if points.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"{where}: landmarks must be [{NUM_LANDMARKS}, 2], got {list(points.shape)}")
    metadata = _check_metadata(metadata, rgb.shape[0], where)
    try:
        metadata_json = json.dumps(metadata, sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: metadata cannot be written as JSON ({error})") from error
    record = {
        "__key__": key,
        IMAGE_MEMBER: _jpeg_bytes(rgb),
        LANDMARKS_MEMBER: _npy_bytes(points),
        METADATA_MEMBER: metadata_json.encode("utf-8"),
    }
    if (params is None) != (vertices is None):
        raise ValueError(f"{where}: ground truth needs both params and vertices, got only one")
    if params is not None:
        if not isinstance(params, Mapping) or set(params) != set(PARAM_NAMES):
            names = sorted(params) if isinstance(params, Mapping) else type(params).__name__
            raise ValueError(f"{where}: params must be a dict with exactly {list(PARAM_NAMES)}, got {names}")
        arrays = {name: _float_array(value, f"{where}: params[{name!r}]") for name, value in params.items()}
        for name, array in arrays.items():
            if array.ndim != 1:
                raise ValueError(f"{where}: params[{name!r}] must be 1-D, got shape {list(array.shape)}")
        mesh = _float_array(vertices, f"{where}: vertices")
        if mesh.ndim != 2 or mesh.shape[1] != 3:
            raise ValueError(f"{where}: vertices must be [V, 3], got {list(mesh.shape)}")
        record[PARAMS_MEMBER] = _npz_bytes(arrays)
        record[VERTICES_MEMBER] = _npy_bytes(mesh)
    return record


# ---------------------------------------------------------------------------------------------- writing


class FaceShardWriter:
    """Stream face samples into ``{prefix}-{index:06d}.tar`` shards of at most ``max_per_shard`` samples.

    Use as a context manager (or call :meth:`close`). Each shard is written to a temporary name and
    renamed once full (or at :meth:`close`); if the ``with`` block raises, the open shard is discarded
    and completed shards stay. Refuses a folder that already holds this prefix's shards or a manifest
    unless ``overwrite`` (then the old manifest is removed at once and stale shards at :meth:`close`).
    """

    def __init__(
        self, output_dir: str | os.PathLike, prefix: str = "faces", max_per_shard: int = 1000, overwrite: bool = False
    ) -> None:
        if isinstance(max_per_shard, bool) or not isinstance(max_per_shard, int) or max_per_shard < 1:
            raise ValueError(f"max_per_shard must be a positive integer, got {max_per_shard!r}")
        if not isinstance(prefix, str) or not prefix or any(char in prefix for char in "/\\."):
            raise ValueError(f"prefix must be a non-empty file-name prefix without '.', '/' or '\\', got {prefix!r}")
        self.output_dir = Path(output_dir)
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise NotADirectoryError(f"output {self.output_dir} exists and is not a folder")
        self.prefix = prefix
        self.max_per_shard = max_per_shard
        self._existing = sorted(self.output_dir.glob(f"{glob.escape(prefix)}-*.tar"))
        if (self.output_dir / MANIFEST_NAME).exists():
            self._existing.append(self.output_dir / MANIFEST_NAME)
        if self._existing and not overwrite:
            names = ", ".join(path.name for path in self._existing[:3]) + (", ..." if len(self._existing) > 3 else "")
            raise FileExistsError(
                f"{self.output_dir} already holds face shards ({names}); pass overwrite or choose another folder"
            )
        (self.output_dir / MANIFEST_NAME).unlink(missing_ok=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._seen: set[str] = set()
        self._crop_size: int | None = None
        self._shards: list[Path] = []
        self._counts: list[int] = []
        self._open: tuple[contextlib.ExitStack, wds.TarWriter] | None = None
        self._closed = False

    def __enter__(self) -> FaceShardWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        else:
            self._abort(exc_type, exc, traceback)

    @property
    def samples(self) -> int:
        """Samples written so far."""
        return sum(self._counts)

    @property
    def crop_size(self) -> int | None:
        """Side of the samples' square crops (``None`` before the first sample)."""
        return self._crop_size

    def write(
        self,
        key: str,
        image: np.ndarray,
        landmarks: np.ndarray,
        metadata: Mapping[str, Any],
        params: Mapping[str, np.ndarray] | None = None,
        vertices: np.ndarray | None = None,
    ) -> None:
        """Add one sample (see :func:`encode_face_sample`); keys are unique and hold no ``.``, ``/``, ``\\``.

        A bad sample raises ``ValueError``/``TypeError`` naming its key and writes nothing.
        """
        if self._closed:
            raise RuntimeError(f"FaceShardWriter({self.output_dir}) is closed")
        _check_key(key, self._seen)
        record = encode_face_sample(key, image, landmarks, metadata, params, vertices)
        size = json.loads(record[METADATA_MEMBER])["crop_size"]
        if self._crop_size is not None and size != self._crop_size:
            raise ValueError(f"sample {key!r}: crop is {size}x{size}, earlier samples are {self._crop_size}")
        tar = self._open[1] if self._open is not None else self._start_shard()
        tar.write(record)
        self._seen.add(key)
        self._crop_size = size
        self._counts[-1] += 1
        if self._counts[-1] == self.max_per_shard:
            self._finish_shard()

    def close(self) -> list[Path]:
        """Finish the open shard, delete stale shards of an overwritten set; returns the shard paths."""
        if not self._closed:
            self._finish_shard()
            for stale in set(self._existing) - {*self._shards, self.output_dir / MANIFEST_NAME}:
                stale.unlink(missing_ok=True)
            self._closed = True
        return list(self._shards)

    def manifest(self, **extra: Any) -> dict[str, Any]:
        """The shard set's manifest: format, counts, crop size, a brace URL pattern, shards; plus ``extra``."""
        count = len(self._shards)
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "samples": self.samples,
            "crop_size": self._crop_size,
            "urls": f"{self.prefix}-{{000000..{count - 1:06d}}}.tar" if count else None,
            "shards": [{"name": path.name, "samples": n} for path, n in zip(self._shards, self._counts, strict=True)],
        }
        clash = sorted(set(extra) & set(manifest))
        if clash:
            raise ValueError(f"manifest fields {clash} are set by the writer")
        return {**manifest, **extra}

    def write_manifest(self, **extra: Any) -> Path:
        """Close the writer and write ``manifest.json`` (atomically, last: its presence marks a complete set)."""
        self.close()
        path = self.output_dir / MANIFEST_NAME
        text = json.dumps(self.manifest(**extra), indent=2, sort_keys=False, default=_json_default)
        with atomic_write(path, "w") as handle:
            handle.write(text + "\n")
        return path

    def _start_shard(self) -> wds.TarWriter:
        path = self.output_dir / f"{self.prefix}-{len(self._shards):06d}.tar"
        stack = contextlib.ExitStack()
        handle: IO[bytes] = stack.enter_context(atomic_write(path))
        tar = stack.enter_context(wds.TarWriter(handle, encoder=False, mtime=0.0))
        self._open = (stack, tar)
        self._shards.append(path)
        self._counts.append(0)
        return tar

    def _finish_shard(self) -> None:
        if self._open is not None:
            stack, self._open = self._open[0], None
            stack.close()

    def _abort(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Discard the open shard (its temporary file is removed) after an error."""
        if self._open is not None:
            stack, self._open = self._open[0], None
            self._shards.pop()
            self._counts.pop()
            stack.__exit__(exc_type, exc, traceback)
        self._closed = True


# ---------------------------------------------------------------------------------------------- reading


def read_face_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``manifest.json`` of a face-shard folder (``shards``, ``samples``, ``crop_size``, ...)."""
    return read_shard_manifest(folder, MANIFEST_FORMAT, "face-shard")


def face_shard_urls(urls: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Shard URLs from a list, a glob (``data/faces-*.tar``), a brace pattern (``data/faces-{000000..000009}.tar``)
    or a shard folder (read from its ``manifest.json``); list entries may be any of these. Local shards must exist."""
    entries = [urls] if isinstance(urls, str | os.PathLike) else list(urls)
    resolved: list[str] = []
    for entry in entries:
        text = os.fspath(entry)
        if Path(text).is_dir():
            listed = [Path(text) / shard["name"] for shard in read_face_manifest(text)["shards"]]
            missing = [path.name for path in listed if not path.is_file()]
            if missing:
                raise FileNotFoundError(f"{Path(text) / MANIFEST_NAME} lists shards that do not exist: {missing}")
            resolved.extend(str(path) for path in listed)
            continue
        for url in expand_urls(text):
            resolved.extend(expand_shard_pattern(url, "face shard"))
    if not resolved:
        raise ValueError(f"no face shard URLs in {urls!r}")
    return resolved


def _load_npy(data: bytes, what: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as error:
        raise ValueError(f"{what}: cannot decode ({type(error).__name__}: {error})") from error


def _member(sample: Mapping[str, Any], name: str, where: str) -> bytes:
    if name not in sample:
        members = sorted(member for member in sample if not member.startswith("__"))
        raise ValueError(f"{where}: no {name!r} member (has {members})")
    return sample[name]


def decode_face_sample(sample: Mapping[str, Any]) -> dict[str, Any]:
    """A raw webdataset sample -> ``{"key", "image" [3,S,S] float in [0,1], "landmarks" [68,2] float32,
    "metadata" dict}`` plus, for synthetic samples, ``"params"`` (name -> 1-D float32 tensor) and
    ``"vertices" [V,3]`` float32 (mm). Raises ``ValueError`` naming shard and key on a missing,
    undecodable or inconsistent member."""
    where = f"{sample.get('__url__', '?')}: sample {sample.get('__key__')!r}"
    image = _decode_image(_member(sample, IMAGE_MEMBER, where), "RGB", f"{where}.{IMAGE_MEMBER}")
    landmarks = _load_npy(_member(sample, LANDMARKS_MEMBER, where), f"{where}.{LANDMARKS_MEMBER}")
    if landmarks.shape != (NUM_LANDMARKS, 2) or not np.isfinite(landmarks).all():
        shape = list(landmarks.shape)
        raise ValueError(f"{where}.{LANDMARKS_MEMBER}: expected finite [{NUM_LANDMARKS}, 2] values, got {shape}")
    try:
        metadata = json.loads(_member(sample, METADATA_MEMBER, where))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{where}.{METADATA_MEMBER}: not valid JSON ({error})") from error
    if not isinstance(metadata, dict):
        raise ValueError(f"{where}.{METADATA_MEMBER}: expected a JSON object, got {type(metadata).__name__}")
    decoded: dict[str, Any] = {
        "key": sample["__key__"],
        "image": image,
        "landmarks": torch.from_numpy(landmarks.astype(np.float32)),
        "metadata": metadata,
    }
    if (PARAMS_MEMBER in sample) != (VERTICES_MEMBER in sample):
        raise ValueError(f"{where}: has only one of {PARAMS_MEMBER!r} and {VERTICES_MEMBER!r}")
    if PARAMS_MEMBER in sample:
        try:
            with np.load(io.BytesIO(sample[PARAMS_MEMBER]), allow_pickle=False) as archive:
                params = {name: archive[name] for name in archive.files}
        except Exception as error:
            raise ValueError(f"{where}.{PARAMS_MEMBER}: cannot decode ({type(error).__name__}: {error})") from error
        if set(params) != set(PARAM_NAMES) or any(array.ndim != 1 for array in params.values()):
            shapes = {name: list(array.shape) for name, array in params.items()}
            raise ValueError(f"{where}.{PARAMS_MEMBER}: expected 1-D {list(PARAM_NAMES)}, got {shapes}")
        vertices = _load_npy(sample[VERTICES_MEMBER], f"{where}.{VERTICES_MEMBER}")
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"{where}.{VERTICES_MEMBER}: expected [V, 3], got {list(vertices.shape)}")
        decoded["params"] = {name: torch.from_numpy(params[name].astype(np.float32)) for name in PARAM_NAMES}
        decoded["vertices"] = torch.from_numpy(vertices.astype(np.float32))
    return decoded


def face_dataset(
    urls: str | os.PathLike | Sequence[str | os.PathLike],
    shuffle_buffer: int = 0,
    split_by_node: bool = True,
    split_by_worker: bool = True,
    augment: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    resampled: bool = False,
) -> wds.WebDataset:
    """A webdataset pipeline over face shards yielding :func:`decode_face_sample` dicts (with webdataset's ``__key__``).

    ``urls``: see :func:`face_shard_urls`. ``shuffle_buffer > 0`` shuffles shard order and samples
    through a buffer of that size. Shards (not samples) are split across distributed ranks and then
    DataLoader workers unless disabled: give at least ``world_size * num_workers`` shards, or some
    reader gets none. ``augment`` maps each decoded sample. Corrupt samples are skipped with a
    ``RuntimeWarning`` and counted in the returned pipeline's ``corrupt_samples.count``. ``resampled``: each
    reader draws shards at random with replacement, endlessly (no split; cut epochs with ``with_epoch``).
    """
    if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, int) or shuffle_buffer < 0:
        raise ValueError(f"shuffle_buffer must be a non-negative integer, got {shuffle_buffer!r}")
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be callable or None, got {type(augment).__name__}")
    handler = CorruptSampleCounter("face sample")
    dataset = open_shards(
        face_shard_urls(urls),
        handler,
        shuffle_buffer,
        split_by_node,
        split_by_worker,
        empty_check=False,
        resampled=resampled,
    )
    dataset = dataset.map(decode_face_sample, handler=handler)
    if augment is not None:
        dataset = dataset.map(augment)
    dataset = dataset.shuffle(shuffle_buffer)
    dataset.corrupt_samples = handler
    return dataset


def save_face_preview(
    urls: str | os.PathLike | Sequence[str | os.PathLike], path: str | os.PathLike, count: int = 16, columns: int = 4
) -> Path:
    """Save the first ``count`` samples of a shard set as a PNG grid with their landmarks drawn (hidden ones,
    when the metadata's ``landmark_visible`` says so, in red). Returns ``path``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    samples = list(itertools.islice(face_dataset(urls, split_by_node=False, split_by_worker=False), count))
    if not samples:
        raise ValueError(f"no readable face samples in {urls!r}")
    visible = None
    if all("landmark_visible" in sample["metadata"] for sample in samples):
        visible = torch.tensor([sample["metadata"]["landmark_visible"] for sample in samples], dtype=torch.bool)
    images = torch.stack([sample["image"] for sample in samples])
    landmarks = torch.stack([sample["landmarks"] for sample in samples])
    return save_landmark_grid(images, landmarks, path, visible=visible, columns=columns)
