"""Input photos: checked (size, aspect, channels, decoded pixels), decoded to 8-bit RGB (with a note on any
conversion) and very large ones downscaled. A photo that passes :func:`check_photo` is one every face detector
can take (dlib's CNN detector fails, sometimes with a crash of the process, on images of 9 px or less)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fastganfit.data.prepare import UnusableInputError, open_image, to_rgb

#: The shorter side a photo must have: no detector finds a face in fewer pixels (dlib's find ~40 px faces with
#: one upsampling), and dlib's CNN detector fails on images of 9 px or less.
MIN_PHOTO_SIDE = 32
#: The longest side over the shortest a photo may have: a face photo is never a strip; a longer one would shrink
#: below :data:`MIN_PHOTO_SIDE` in the detectors' copy (at most ``max_side`` pixels long).
MAX_ASPECT = 10.0

MODE_NAMES = {
    "1": "black-and-white",
    "L": "grayscale",
    "LA": "grayscale with transparency",
    "P": "palette",
    "PA": "palette with transparency",
    "RGBA": "RGBA",
    "CMYK": "CMYK",
    "YCbCr": "YCbCr",
    "I": "32-bit integer",
    "I;16": "16-bit",
    "I;16B": "16-bit",
    "I;16L": "16-bit",
    "I;16N": "16-bit",
    "F": "floating-point",
}


@dataclass(frozen=True)
class Photo:
    """A decoded input: ``image`` uint8 RGB ``[H, W, 3]``, the factor ``scale`` it was resized by from the
    file's pixels (1 when not downscaled) and ``notes`` on what was done to it."""

    image: np.ndarray
    scale: float
    notes: tuple[str, ...]


def conversion_note(image: Image.Image) -> str | None:
    """What converting ``image`` to 8-bit RGB does, or ``None`` for an RGB image."""
    if image.mode == "RGB":
        return None
    transparent = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    name = MODE_NAMES.get(image.mode, image.mode)
    return f"{name} image converted to RGB" + (" (transparency over black)" if transparent else "")


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` uint8 ``[H, W, 3]`` resized (antialiased) so its longer side is at most ``max_side``, and the
    scale factor (new / old pixels); unchanged with factor 1 when it already fits."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image, 1.0
    factor = max_side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    resized = Image.fromarray(image).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8), size[0] / width


def check_photo(width: int, height: int) -> None:
    """Raise :class:`~fastganfit.data.prepare.UnusableInputError` naming the size when a ``width`` x ``height``
    photo is too small (shorter side below :data:`MIN_PHOTO_SIDE`) or too elongated (beyond :data:`MAX_ASPECT`)."""
    if min(width, height) < MIN_PHOTO_SIDE:
        raise UnusableInputError(
            f"too small to hold a face ({width}x{height} px; photos need at least {MIN_PHOTO_SIDE} px on each side)"
        )
    aspect = max(width, height) / min(width, height)
    if aspect > MAX_ASPECT:
        raise UnusableInputError(
            f"too elongated to be a face photo ({width}x{height} px, aspect {aspect:.1f}:1; at most {MAX_ASPECT:g}:1)"
        )


def check_decoded(rgb: np.ndarray, width: int, height: int) -> None:
    """Raise :class:`~fastganfit.data.prepare.UnusableInputError` unless ``rgb`` is uint8 ``[height, width, 3]``
    (every pixel the file's header announces, three channels)."""
    if rgb.dtype != np.uint8 or rgb.shape != (height, width, 3):
        raise UnusableInputError(
            f"decoded to {rgb.dtype} {list(rgb.shape)}, not the {width}x{height} RGB pixels its header announces"
        )


def decoded_photo(image: Image.Image, max_side: int) -> Photo:
    """A loaded PIL ``image`` as uint8 RGB (a note on any conversion), downscaled to ``max_side`` pixels at most."""
    if max_side < 16:
        raise ValueError(f"max_side must be at least 16 pixels, got {max_side}")
    check_photo(*image.size)
    notes = [note] if (note := conversion_note(image)) else []
    rgb = to_rgb(image)
    check_decoded(rgb, *image.size)
    resized, scale = downscale(rgb, max_side)
    if scale != 1.0:
        old, new = rgb.shape[1::-1], resized.shape[1::-1]
        notes.append(f"downscaled from {old[0]}x{old[1]} to {new[0]}x{new[1]} px (max_side={max_side})")
    return Photo(resized, scale, tuple(notes))


def load_photo(path: str | os.PathLike, max_side: int) -> Photo:
    """Decode ``path`` (EXIF orientation applied) to uint8 RGB, downscaled to ``max_side`` pixels at most.

    Raises :class:`~fastganfit.data.prepare.UnusableInputError` (not an image, unreadable, too small, too
    elongated: :func:`check_photo`) with the reason and the size.
    """
    if max_side < 16:
        raise ValueError(f"max_side must be at least 16 pixels, got {max_side}")
    return decoded_photo(open_image(path), max_side)


def array_photo(image: np.ndarray, max_side: int, name: str) -> Photo:
    """A uint8 RGB array ``[H, W, 3]`` as a :class:`Photo` (downscaled to ``max_side`` pixels at most); ``ValueError``
    naming the input ``name`` for another dtype or shape."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"{name}: an image array must be uint8 RGB [H, W, 3], got {image.dtype} {list(image.shape)}")
    return decoded_photo(Image.fromarray(np.ascontiguousarray(image)), max_side)
