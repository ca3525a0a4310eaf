"""prepare: photos -> aligned face crops in face shards (the schema of :mod:`fastganfit.data.schema`).

Each input image is decoded (EXIF orientation applied; grayscale, 16-bit, palette, CMYK and RGBA
converted to 8-bit RGB, transparency over black), its faces detected with 68 landmarks, the largest
face aligned onto :func:`~fastganfit.data.schema.crop_template` by a least-squares similarity and
cropped (:mod:`fastganfit.perception.crop`). Worker processes decode, detect and align; the main process
writes the shards in input order through :class:`~fastganfit.data.face_shards.FaceShardWriter`, so the
output does not depend on the number of workers. An input that cannot be used is skipped with its
reason (not an image, unreadable, no face, face too small, ...) and listed in ``manifest.json``; one
bad file never stops the run.

Command line: ``fastganfit-prepare input=DIR|GLOB output=DIR [workers=N] ...`` (:mod:`fastganfit.cli.prepare`,
options in ``conf/prepare.yaml``; see ``docs/data.md``). ``DIR`` is searched recursively for image files
(``.jpg .jpeg .png .bmp .gif .tif .tiff .webp .ppm .pgm .pnm``; other files are listed as skipped, hidden
files ignored); every file a ``GLOB`` matches is tried.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from fastganfit.data.face_shards import FaceShardWriter
from fastganfit.perception.crop import DEFAULT_CROP_SIZE, AlignedFace, align_face
from fastganfit.perception.crop_template import crop_template
from fastganfit.perception.landmarks import (
    FaceDetection,
    Landmarker,
    build_landmarker,
    fan_weights_path,
    largest_face,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class UnusableInputError(ValueError):
    """An input that gives no face crop; the message is the reason recorded in the manifest."""


@dataclass(frozen=True)
class Skipped:
    """An input that was skipped, and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class PreparedFace:
    """One aligned face ready for the writer: crop uint8 ``[S, S, 3]``, landmarks ``[68, 2]`` crop pixels."""

    source: str
    image: np.ndarray
    landmarks: np.ndarray
    metadata: dict[str, Any]


@dataclass(frozen=True)
class PrepareReport:
    """What :func:`prepare_images` did: ``inputs`` files considered, ``written`` faces, ``skipped`` inputs."""

    output_dir: Path
    shards: list[Path]
    manifest: Path
    inputs: int
    written: int
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        """Inputs processed per second of wall time."""
        return self.inputs / self.seconds if self.seconds > 0 else float("nan")


# ---------------------------------------------------------------------------------------------- inputs


def _suffix(path: Path) -> str:
    return f"suffix {path.suffix!r}" if path.suffix else "no suffix"


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def find_inputs(
    inputs: str | os.PathLike | Sequence[str | os.PathLike], exclude: Path | None = None
) -> tuple[list[Path], list[Skipped]]:
    """Input files from a folder (recursive; image suffixes only, other files returned as skipped), a glob
    pattern (every match) or a list of files; sorted, without anything under ``exclude``.

    Raises ``FileNotFoundError`` when a folder, pattern or listed file does not exist or matches nothing.
    """
    excluded = exclude.resolve() if exclude is not None else None

    def kept(path: Path) -> bool:
        return excluded is None or not path.resolve().is_relative_to(excluded)

    if not isinstance(inputs, str | os.PathLike):
        files = [Path(item) for item in inputs]
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"input files do not exist: {', '.join(missing[:5])}")
        return [path for path in files if kept(path)], []
    root = Path(inputs)
    if root.is_dir():
        found = sorted(p for p in root.rglob("*") if p.is_file() and not _is_hidden(p, root) and kept(p))
        images = [path for path in found if path.suffix.lower() in IMAGE_SUFFIXES]
        others = [path for path in found if path.suffix.lower() not in IMAGE_SUFFIXES]
        return images, [Skipped(str(path), f"not an image file name ({_suffix(path)})") for path in others]
    if root.is_file():
        return [root], []
    if glob.has_magic(str(root)):
        matches = sorted(Path(p) for p in glob.glob(str(root), recursive=True) if Path(p).is_file())
        if not matches:
            raise FileNotFoundError(f"input pattern {root} matches no files")
        return [path for path in matches if kept(path)], []
    raise FileNotFoundError(f"input {root} does not exist (expected a folder, a file or a glob pattern)")


def open_image(path: str | os.PathLike) -> Image.Image:
    """Decode an image file into a loaded PIL image (EXIF orientation applied, first frame, any mode).

    Raises :class:`UnusableInputError` with the reason: not an image, unreadable (corrupt, truncated).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                return ImageOps.exif_transpose(opened)
    except UnidentifiedImageError as error:
        raise UnusableInputError("not an image (no decoder recognises the file)") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UnusableInputError(f"unreadable (too large: {error})") from error
    except Exception as error:
        raise UnusableInputError(f"unreadable ({type(error).__name__}: {error})") from error


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to uint8 RGB ``[H, W, 3]`` (:func:`open_image`, then :func:`to_rgb`).

    Raises :class:`UnusableInputError` with the reason: not an image, unreadable (corrupt, truncated).
    """
    return to_rgb(open_image(path))


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL image -> uint8 RGB ``[H, W, 3]``: 16/32-bit integer images scaled to 8 bits, float images
    clipped to [0, 255], transparency composited over black."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        array = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(array, 0, 255).round().astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).round().astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def sample_key(path: Path, root: Path | None, used: set[str]) -> str:
    """A unique webdataset key from a file's path (relative to ``root``), e.g. ``people_ann_01``."""
    relative = path.relative_to(root) if root is not None and path.is_relative_to(root) else Path(path.name)
    stem = KEY_UNSAFE.sub("_", str(relative.with_suffix(""))).strip("_") or "image"
    key, number = stem, 1
    while key in used:
        number += 1
        key = f"{stem}_{number}"
    used.add(key)
    return key


# ---------------------------------------------------------------------------------------------- one image


@dataclass(frozen=True)
class LargestFace:
    """The largest face found in an image: its ``detection`` (box, score, landmarks in image pixels), the
    ``aligned`` crop (crop, crop landmarks, source -> crop transform) and how many ``faces`` were found."""

    detection: FaceDetection
    aligned: AlignedFace
    faces: int


def align_largest_face(
    image: np.ndarray, landmarker: Landmarker, template: np.ndarray, crop_size: int, min_face: float
) -> LargestFace:
    """Detect the faces of a uint8 RGB image ``[H, W, 3]`` and align the largest onto ``template`` ``[68, 2]``
    in a ``crop_size`` square crop; :class:`UnusableInputError` says why not (no face, face too small, ...)."""
    detections = landmarker.detect(image)
    face = largest_face(detections)
    if face is None:
        raise UnusableInputError("no face found")
    width, height = face.box[2] - face.box[0], face.box[3] - face.box[1]
    if min(width, height) < min_face:
        raise UnusableInputError(f"face too small ({width:.0f}x{height:.0f} px, min_face={min_face:g})")
    try:
        aligned = align_face(image, face.landmarks, template, crop_size)
    except ValueError as error:
        raise UnusableInputError(f"alignment failed ({error})") from error
    return LargestFace(face, aligned, len(detections))


def prepare_face(
    path: str | os.PathLike, landmarker: Landmarker, template: np.ndarray, crop_size: int, min_face: float
) -> PreparedFace:
    """Decode, detect, align and crop the largest face of one image; :class:`UnusableInputError` says why not."""
    image = load_rgb(path)
    found = align_largest_face(image, landmarker, template, crop_size, min_face)
    face, aligned = found.detection, found.aligned
    metadata = {
        "source": str(path),
        "box": [round(float(value), 3) for value in face.box],
        "crop_transform": aligned.transform.tolist(),
        "crop_size": crop_size,
        "landmarker": landmarker.name,
        "score": round(face.score, 6),
        "faces": found.faces,
        "image_size": [image.shape[1], image.shape[0]],
    }
    return PreparedFace(str(path), aligned.image, aligned.landmarks, metadata)


@dataclass(frozen=True)
class FaceJob:
    """What each worker needs: the landmarker (by name and options), the crop template and the limits."""

    landmarker: str
    landmarker_options: dict[str, Any]
    template: np.ndarray
    crop_size: int
    min_face: float

    def build(self) -> Callable[[Path], PreparedFace | Skipped]:
        """A function ``path -> PreparedFace | Skipped`` with its own landmarker; it never raises."""
        landmarker = build_landmarker(self.landmarker, **self.landmarker_options)

        def run(path: Path) -> PreparedFace | Skipped:
            try:
                return prepare_face(path, landmarker, self.template, self.crop_size, self.min_face)
            except UnusableInputError as error:
                return Skipped(str(path), str(error))
            except Exception as error:  # anything else about one file is that file's problem, not the run's
                return Skipped(str(path), f"failed ({type(error).__name__}: {error})")

        return run


#: A pool worker's state, set once per process by :func:`_start_worker`: its job, or why it could not be built.
_worker: dict[str, Any] = {}


def _start_worker(job: FaceJob) -> None:
    torch.set_num_threads(1)  # parallelism comes from the worker processes
    try:
        _worker["run"] = job.build()
    except Exception as error:  # raised again for each task: a failing initializer would be restarted forever
        _worker["error"] = error


def _run_in_worker(path: Path) -> PreparedFace | Skipped:
    if "error" in _worker:
        raise _worker["error"]
    return _worker["run"](path)


def _results(paths: Sequence[Path], job: FaceJob, workers: int, start_method: str | None) -> Iterator[Any]:
    """``PreparedFace | Skipped`` for each path, in order; ``workers > 1`` uses a process pool."""
    if workers <= 1 or len(paths) <= 1:
        run = job.build()
        yield from (run(path) for path in paths)
        return
    context = multiprocessing.get_context(start_method)
    with context.Pool(min(workers, len(paths)), initializer=_start_worker, initargs=(job,)) as pool:
        yield from pool.imap(_run_in_worker, paths, chunksize=1)


# ---------------------------------------------------------------------------------------------- the run


def prepare_images(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    crop_size: int = DEFAULT_CROP_SIZE,
    workers: int | None = None,
    landmarker: str = "dlib",
    landmarker_options: dict[str, Any] | None = None,
    max_per_shard: int = 1000,
    min_face: float = 40,
    prefix: str = "faces",
    overwrite: bool = False,
    progress: bool = True,
    start_method: str | None = None,
) -> PrepareReport:
    """Detect, align and crop the faces of ``inputs`` into face shards in ``output_dir``; see the module doc.

    ``inputs``: a folder, a glob pattern or a list of files. ``workers``: processes decoding, detecting
    and aligning (default: the CPU count; 1 runs in this process). ``landmarker`` / ``landmarker_options``:
    :func:`~fastganfit.perception.landmarks.build_landmarker`. Faces whose box is narrower or shorter than
    ``min_face`` pixels are skipped. ``manifest.json`` lists the shards, the counts and every skipped
    input with its reason; it is written even when no face was found.

    Raises ``FileNotFoundError`` for a missing input or missing FAN weights, ``ValueError`` for bad
    options and ``FileExistsError`` for an output folder that already holds shards (unless ``overwrite``).
    """
    if crop_size < 16:
        raise ValueError(f"crop_size must be at least 16 pixels, got {crop_size}")
    if min_face < 0:
        raise ValueError(f"min_face must be >= 0 pixels, got {min_face}")
    options = dict(landmarker_options or {})
    check_landmarker(landmarker, options)
    output = Path(output_dir)
    started = time.perf_counter()
    paths, skipped = find_inputs(inputs, exclude=output)
    considered = len(paths) + len(skipped)
    if not considered:
        raise FileNotFoundError(f"input {inputs} holds no files")
    root = Path(inputs) if isinstance(inputs, str | os.PathLike) and Path(inputs).is_dir() else None
    job = FaceJob(landmarker, options, crop_template(crop_size).double().numpy(), crop_size, float(min_face))
    workers = (os.cpu_count() or 1) if workers is None else workers
    used_keys: set[str] = set()
    several_faces = 0
    bar = tqdm(total=len(paths), desc="prepare", unit="image", file=sys.stderr, disable=not progress)
    with bar, FaceShardWriter(output, prefix=prefix, max_per_shard=max_per_shard, overwrite=overwrite) as writer:
        for result in _results(paths, job, workers, start_method):
            bar.update(1)
            if isinstance(result, Skipped):
                skipped.append(result)
                if progress:
                    tqdm.write(f"skipped {result.source}: {result.reason}", file=sys.stderr)
                continue
            try:
                key = sample_key(Path(result.source), root, used_keys)
                writer.write(key, result.image, result.landmarks, result.metadata)
            except (ValueError, TypeError) as error:
                skipped.append(Skipped(result.source, f"could not be written ({error})"))
                continue
            several_faces += result.metadata["faces"] > 1
            bar.set_postfix(written=writer.samples, skipped=len(skipped), refresh=False)
        manifest = writer.write_manifest(
            producer="fastganfit.data.prepare",
            landmarker=landmarker,
            landmarker_options=options,
            min_face=min_face,
            inputs=considered,
            several_faces=several_faces,
            skipped=[{"source": skip.source, "reason": skip.reason} for skip in skipped],
        )
    return PrepareReport(
        output, writer.close(), manifest, considered, writer.samples, skipped, time.perf_counter() - started
    )


def check_landmarker(name: str, options: dict[str, Any]) -> None:
    """Fail early (before any worker starts) on an unknown landmarker or missing FAN weights."""
    if name not in ("dlib", "fan"):
        raise ValueError(f"unknown landmarker {name!r}; choose from ['dlib', 'fan']")
    if name == "fan":
        fan_weights_path(options.get("weights"))
