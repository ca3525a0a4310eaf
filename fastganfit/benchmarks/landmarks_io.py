"""Reading 3D landmarks: menpo LJSON, MeshLab picked points (.pp), plain text and NumPy files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from fastganfit.geometry.alignment import check_points

LANDMARK_SUFFIXES = (".ljson", ".pp", ".txt", ".npy", ".npz")


def read_ljson(path: str | Path) -> np.ndarray:
    """Points ``[L, 3]`` of a menpo LJSON file (version 2 or 3 layout; the first group in version 3).

    Null coordinates (unlabelled points) become NaN.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if "groups" in data:
        if not data["groups"]:
            raise ValueError(f"{path}: LJSON file has no landmark groups")
        group = next(iter(data["groups"].values()))
        points = group.get("landmarks", {}).get("points")
    else:
        points = data.get("landmarks", {}).get("points")
    if points is None:
        raise ValueError(f"{path}: LJSON file has no landmarks.points array")
    rows = [[np.nan if x is None else float(x) for x in row] for row in points]
    array = np.asarray(rows, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"{path}: expected 3D landmark points [L, 3], got shape {list(array.shape)}")
    return array


def read_picked_points(path: str | Path) -> np.ndarray:
    """Points ``[L, 3]`` of a MeshLab picked-points (``.pp``) XML file, in file order."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise ValueError(f"{path}: not a valid picked-points XML file ({error})") from error
    points = [[float(node.attrib[axis]) for axis in "xyz"] for node in root.iter("point")]
    if not points:
        raise ValueError(f"{path}: picked-points file holds no <point> elements")
    return np.asarray(points, dtype=np.float64)


def read_landmark_array(path: str | Path) -> np.ndarray:
    """Raw array of a landmark file: ``.ljson``/``.pp`` points ``[L, 3]``, or ``.txt``/``.npy`` as stored.

    Text and NumPy files hold either coordinates ``[L, 3]`` or vertex indices ``[L]`` (integers); an
    ``.npz`` file (e.g. a morphable model such as ``fastganfit/assets/ict_face.npz``) gives its
    ``landmark_indices`` array.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"landmark file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".ljson":
        return read_ljson(path)
    if suffix == ".pp":
        return read_picked_points(path)
    if suffix == ".npy":
        return np.load(path)
    if suffix == ".npz":
        with np.load(path) as data:
            if "landmark_indices" not in data.files:
                raise ValueError(f"{path}: NPZ landmark file needs a 'landmark_indices' array, has {data.files}")
            return np.asarray(data["landmark_indices"])
    if suffix == ".txt":
        array = np.loadtxt(path, ndmin=1)
        return array.astype(np.int64) if array.ndim == 1 and np.all(array == np.round(array)) else array
    raise ValueError(f"{path}: unsupported landmark format {suffix!r}; expected one of {LANDMARK_SUFFIXES}")


def landmark_points(
    source: str | Path | np.ndarray, vertices: np.ndarray, count: int, name: str = "landmarks"
) -> np.ndarray:
    """Landmark coordinates ``[count, 3]`` from a file or array of coordinates or vertex indices.

    Args:
        source: a landmark file (see :func:`read_landmark_array`) or an array, either coordinates
            ``[count, 3]`` or integer vertex indices ``[count]`` into ``vertices``.
        vertices: ``[V, 3]`` mesh vertices that indices refer to.
        count: required number of landmarks (68 for MICC, 7 for NoW).
        name: what the landmarks are, for error messages.
    """
    array = read_landmark_array(source) if isinstance(source, str | Path) else np.asarray(source)
    if array.ndim == 1:
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name}: 1-D landmarks must be integer vertex indices, got dtype {array.dtype}")
        if array.shape[0] != count:
            raise ValueError(f"{name}: expected {count} vertex indices, got {array.shape[0]}")
        if array.min() < 0 or array.max() >= vertices.shape[0]:
            raise ValueError(f"{name}: vertex indices outside [0, {vertices.shape[0]})")
        return np.asarray(vertices[array], dtype=np.float64)
    return check_points(array, name, count)


def read_vertex_indices(path: str | Path, count: int, name: str) -> np.ndarray:
    """``count`` integer vertex indices ``[count]`` from a ``.txt``/``.npy``/``.npz`` file; ``name`` is the option."""
    array = np.asarray(read_landmark_array(path)).ravel()
    if array.shape[0] != count or not np.all(array == np.round(array)):
        raise ValueError(f"{name}={path} must hold {count} integer vertex indices, got {array.shape[0]} values")
    return array.astype(np.int64)
