"""Load the morphable models users have (BFM 2009, BFM 2017/2019, FLAME, generic .npz) into
:class:`~fastganfit.facemodel.morphable.MorphableModel`.

Every loader returns geometry in millimetres with bases scaled by their standard deviations (so
coefficients are N(0, 1)), triangles wound counter-clockwise seen from outside (the ICT asset's
convention) and, by default, the origin moved to the canonical pivot of the embedded ICT model
(centre of the landmarks' bounding box in x and y, 85 mm behind their mean depth), so that the default
camera frames every model the same way. None of these files carries iBUG-68 landmark vertex indices:
pass them as ``landmark_indices`` (a list of 68 ints or a ``.npy``/``.txt`` file).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastganfit.facemodel.geometry import PIVOT_DEPTH_BEHIND_LANDMARKS_MM, symmetry_map
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.io.mesh_export import read_obj

NUM_LANDMARKS = 68
MICROMETRE_TO_MM = 1e-3
METRE_TO_MM = 1e3
FLAME_SHAPE_COMPONENTS = 300  # FLAME's shapedirs hold 300 identity columns, then the expression columns
LandmarkSource = Sequence[int] | np.ndarray | str | os.PathLike


class ModelFormatError(ValueError):
    """A model file is not in the expected format (missing key, wrong shape, unreadable)."""


def _check_file(path: str | os.PathLike, what: str, expected: str = "") -> Path:
    """``path`` as a Path; ``FileNotFoundError`` naming ``what`` and the ``expected`` file when it is not a file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist" + (f" (expected {expected})" if expected else ""))
    return path


def read_landmark_indices(source: LandmarkSource | None, num_vertices: int, model_path: Path) -> np.ndarray:
    """The 68 iBUG landmark vertex indices ``[68]`` from a list/array or a ``.npy``/``.txt`` file."""
    if source is None:
        raise ValueError(
            f"{model_path}: this model does not include landmark vertex indices; pass landmark_indices: "
            f"{NUM_LANDMARKS} 0-based vertex indices in iBUG-68 order, as a list or a .npy/.txt file"
        )
    if isinstance(source, str | os.PathLike):
        path = _check_file(source, "landmark indices", "68 0-based vertex indices in iBUG order, a .txt or .npy")
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            tokens = [tok for tok in re.split(r"[\s,;]+", path.read_text(encoding="utf-8")) if tok]
            try:
                values = np.asarray([float(tok) for tok in tokens])
            except ValueError as error:
                raise ValueError(f"landmark indices file {path}: not a list of numbers ({error})") from error
        origin = str(path)
    else:
        values, origin = np.asarray(source), "landmark_indices"
    values = np.asarray(values)
    if values.ndim == 2 and 1 in values.shape:
        values = values.reshape(-1)
    if values.shape != (NUM_LANDMARKS,):
        raise ValueError(f"{origin}: expected {NUM_LANDMARKS} landmark vertex indices, got shape {list(values.shape)}")
    if not np.issubdtype(values.dtype, np.number) or not np.all(np.mod(values, 1) == 0):
        raise ValueError(f"{origin}: landmark vertex indices must be whole numbers")
    indices = values.astype(np.int64)
    if indices.min() < 0 or indices.max() >= num_vertices:
        raise ValueError(
            f"{origin}: landmark vertex indices must lie in [0, {num_vertices}) for {model_path}, "
            f"got [{indices.min()}, {indices.max()}] (are they 1-based or for another mesh?)"
        )
    return indices


def _require(arrays: dict[str, Any], key: str, path: Path, layout: str) -> Any:
    if key not in arrays:
        raise ModelFormatError(f"{path}: missing {key!r}; expected {layout}")
    return arrays[key]


def _flat_shape(value: Any, name: str, path: Path, rows: int | None = None) -> np.ndarray:
    """A ``[3V]`` mean vector (accepts ``[3V, 1]``/``[1, 3V]``)."""
    array = np.asarray(value, np.float64)
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1 or array.size % 3 or (rows is not None and array.size != rows):
        expected = f"[{rows}]" if rows is not None else "[3V]"
        raise ModelFormatError(f"{path}: {name} has shape {list(np.shape(value))}, expected {expected}")
    return array


def _per_mode_offsets(
    basis: np.ndarray, std: np.ndarray, rows: int, name: str, path: Path, count: int | None
) -> np.ndarray:
    """``[K, V, 3]`` offsets ``basis[:, k] * std[k]`` from a ``[3V, K]`` PCA basis and standard deviations ``[K]``."""
    basis = np.asarray(basis, np.float32)
    std = np.asarray(std, np.float32).reshape(-1)
    if basis.ndim != 2 or basis.shape != (rows, std.shape[0]):
        raise ModelFormatError(
            f"{path}: {name} basis has shape {list(basis.shape)}, expected [{rows}, {std.shape[0]}] "
            "(3V rows, one column per mode)"
        )
    available = basis.shape[1]
    count = available if count is None else count
    if not 0 <= count <= available:
        raise ValueError(f"{path}: asked for {count} {name} components, the file has {available}")
    if np.any(std[:count] < 0):
        raise ModelFormatError(f"{path}: {name} standard deviations must not be negative")
    return (basis[:, :count] * std[:count]).T.reshape(count, -1, 3)


def _outward_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``faces`` wound so the triangles at the front-most vertex (nose tip) face +Z, the camera."""
    front = int(np.argmax(vertices[:, 2]))
    around = faces[(faces == front).any(axis=1)]
    if len(around) == 0:
        return faces
    a, b, c = (vertices[around[:, k]] for k in range(3))
    return faces if np.cross(b - a, c - a).sum(axis=0)[2] >= 0 else faces[:, [0, 2, 1]]


def canonical_pivot(mean: np.ndarray, landmark_indices: np.ndarray) -> np.ndarray:
    """The canonical origin ``[3]``: landmark box centre in x and y, 85 mm behind the landmarks' mean depth."""
    landmarks = mean[landmark_indices]
    centre = (landmarks.min(axis=0) + landmarks.max(axis=0)) / 2
    return np.array([centre[0], centre[1], landmarks[:, 2].mean() - PIVOT_DEPTH_BEHIND_LANDMARKS_MM])


def _uv_layout(uv_mesh: str | os.PathLike, num_vertices: int, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``uvs [T, 2]`` and per-corner ``face_uvs [F, 3]`` for ``faces`` from an OBJ with the same vertices."""
    path = _check_file(uv_mesh, "UV mesh", "an OBJ with the model's vertices in order and 'f v/vt' UV corners")
    mesh = read_obj(path)
    if len(mesh.vertices) != num_vertices:
        raise ValueError(f"UV mesh {path}: {len(mesh.vertices)} vertices, the model has {num_vertices}")
    if mesh.uvs is None:
        raise ValueError(f"UV mesh {path}: faces have no UV indices ('f v/vt' corners)")
    corner_uv: dict[tuple[int, int, int], tuple[int, int, int]] = {}
    for tri, tri_uv in zip(mesh.faces.tolist(), mesh.face_uvs.tolist(), strict=True):
        for corners, corner_uvs in ((tri, tri_uv), (tri[::-1], tri_uv[::-1])):
            for shift in range(3):
                key = tuple(corners[shift:] + corners[:shift])
                corner_uv.setdefault(key, tuple(corner_uvs[shift:] + corner_uvs[:shift]))
    face_uvs = np.empty_like(faces)
    for row, tri in enumerate(faces.tolist()):
        found = corner_uv.get(tuple(tri))
        if found is None:
            raise ValueError(f"UV mesh {path}: has no face with the model's triangle {tri} (different topology?)")
        face_uvs[row] = found
    return mesh.uvs, face_uvs


def _build(
    path: Path,
    mean: np.ndarray,
    shape_basis: np.ndarray,
    expression_basis: np.ndarray,
    faces: np.ndarray,
    landmark_indices: LandmarkSource | None,
    uv_mesh: str | os.PathLike | None,
    recentre: bool,
) -> MorphableModel:
    """Common tail of the loaders: landmarks, winding, optional UVs, recentring, symmetry."""
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.number):
        raise ModelFormatError(f"{path}: triangles have shape {list(faces.shape)}, expected [F, 3] indices")
    faces = faces.astype(np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= len(mean)):
        raise ModelFormatError(
            f"{path}: triangle indices span [{faces.min()}, {faces.max()}], expected [0, {len(mean)})"
        )
    indices = read_landmark_indices(landmark_indices, len(mean), path)
    faces = _outward_faces(mean, faces)
    pivot = canonical_pivot(mean, indices)
    if recentre:
        mean = mean - pivot
    mirror_plane_x = 0.0 if recentre else pivot[0]
    arrays = {
        "mean": mean.astype(np.float32),
        "shape_basis": shape_basis.astype(np.float32, copy=False),
        "expression_basis": expression_basis.astype(np.float32, copy=False),
        "faces": faces,
        "landmark_indices": indices,
        "symmetry": symmetry_map(mean - np.array([mirror_plane_x, 0.0, 0.0]))[0],
    }
    if uv_mesh is not None:
        arrays["uvs"], arrays["face_uvs"] = _uv_layout(uv_mesh, len(mean), faces)
    return MorphableModel.from_arrays(arrays, source=str(path))


BFM2009_LAYOUT = "a BFM 2009 01_MorphableModel.mat with shapeMU [3V,1], shapePC [3V,K], shapeEV [K,1], tl [F,3]"


def _read_mat(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Read ``keys`` from a MATLAB file (v5 via scipy, v7.3 via h5py; v7.3 arrays are stored transposed)."""
    import h5py
    import scipy.io

    try:
        try:
            contents = scipy.io.loadmat(path, variable_names=list(keys))
            return {key: value for key, value in contents.items() if key in keys}
        except NotImplementedError:
            with h5py.File(path, "r") as mat:
                return {key: np.asarray(mat[key]).T for key in keys if key in mat}
    except (scipy.io.matlab.MatReadError, ValueError, TypeError, OSError) as error:
        raise ModelFormatError(f"{path}: cannot read as a MATLAB .mat file ({error})") from error


def load_bfm2009(
    path: str | os.PathLike,
    landmark_indices: LandmarkSource | None,
    num_shape: int | None = None,
    uv_mesh: str | os.PathLike | None = None,
    recentre: bool = True,
) -> MorphableModel:
    """Load the Basel Face Model 2009 (``PublicMM1/01_MorphableModel.mat``).

    The file stores micrometres (converted to mm), an orthonormal ``shapePC`` and ``shapeEV`` as
    standard deviations (not variances), so each mode is ``shapePC[:, k] * shapeEV[k]``; triangles
    ``tl`` are 1-based. BFM 2009 has no expression model: the model has 0 expression components.
    ``num_shape`` keeps the first components (default all 199).
    """
    path = _check_file(path, "BFM 2009 model", f"{BFM2009_LAYOUT}; see docs/assets.md")
    data = _read_mat(path, ("shapeMU", "shapePC", "shapeEV", "tl"))
    mean = _flat_shape(_require(data, "shapeMU", path, BFM2009_LAYOUT), "shapeMU", path)
    basis = _require(data, "shapePC", path, BFM2009_LAYOUT)
    std = np.asarray(_require(data, "shapeEV", path, BFM2009_LAYOUT)).reshape(-1)
    shape_basis = _per_mode_offsets(basis, std, mean.size, "shape (shapePC)", path, num_shape) * np.float32(
        MICROMETRE_TO_MM
    )
    mean = mean.reshape(-1, 3) * MICROMETRE_TO_MM
    triangles = np.asarray(_require(data, "tl", path, BFM2009_LAYOUT))
    if triangles.ndim != 2 or triangles.shape[1] != 3:
        raise ModelFormatError(f"{path}: tl has shape {list(triangles.shape)}, expected [F, 3]")
    if triangles.size and triangles.min() < 1:
        raise ModelFormatError(f"{path}: tl should hold 1-based (MATLAB) vertex indices, found {triangles.min()}")
    expression_basis = np.zeros((0, *mean.shape))
    return _build(path, mean, shape_basis, expression_basis, triangles - 1, landmark_indices, uv_mesh, recentre)


BFM2017_LAYOUT = (
    "a BFM 2017/2019 .h5 with shape/model/{mean [3V], pcaBasis [3V,K], pcaVariance [K]}, "
    "shape/representer/cells [3,F] and optionally expression/model/{mean, pcaBasis, pcaVariance}"
)


def _h5_dataset(h5: Any, key: str, path: Path) -> np.ndarray:
    if key not in h5:
        raise ModelFormatError(f"{path}: missing {key!r}; expected {BFM2017_LAYOUT}")
    return np.asarray(h5[key])


def _statismo_offsets(h5: Any, group: str, rows: int, path: Path, count: int | None) -> np.ndarray:
    """Offsets ``[K, V, 3]`` of one statismo PCA model (``shape`` or ``expression``), scaled to N(0, 1).

    Statismo >= 0.9 stores the orthonormal basis U: offsets are ``U * sqrt(variance)``. Version 0.8
    (assumed when ``<group>/version`` is absent) stored ``U * sqrt(variance)``, so U is first recovered
    by normalising the columns. This follows scalismo-faces' reader, the BFM's reference implementation.
    """
    basis = _h5_dataset(h5, f"{group}/model/pcaBasis", path).astype(np.float32)
    variance = _h5_dataset(h5, f"{group}/model/pcaVariance", path).astype(np.float64).reshape(-1)
    if np.any(variance < 0):
        raise ModelFormatError(f"{path}: {group}/model/pcaVariance must not be negative")
    version = tuple(
        int(np.asarray(h5[f"{group}/version/{key}"])) if f"{group}/version/{key}" in h5 else default
        for key, default in (("majorVersion", 0), ("minorVersion", 8))
    )
    if version == (0, 8) and basis.ndim == 2:
        norms = np.linalg.norm(basis, axis=0)
        basis = basis / np.where(norms > 0, norms, 1.0)
    return _per_mode_offsets(basis, np.sqrt(variance), rows, group, path, count)


def load_bfm2017(
    path: str | os.PathLike,
    landmark_indices: LandmarkSource | None,
    num_shape: int | None = None,
    num_expression: int | None = None,
    uv_mesh: str | os.PathLike | None = None,
    recentre: bool = True,
) -> MorphableModel:
    """Load the Basel Face Model 2017 or 2019 (``model2017-1_*.h5``, ``model2019_*.h5``).

    Statismo layout, in mm: ``pcaBasis [3V, K]`` (orthonormal U) with ``pcaVariance [K]`` variances, so
    each mode is ``U[:, k] * sqrt(variance[k])``; ``shape/representer/cells [3, F]`` 0-based. The mean face is
    ``shape/model/mean`` plus ``expression/model/mean`` (the mean expression offset), as in the
    reference implementation. ``num_shape``/``num_expression`` keep the first components (default all).
    """
    import h5py

    path = _check_file(path, "BFM 2017/2019 model", f"{BFM2017_LAYOUT}; see docs/assets.md")
    try:
        h5 = h5py.File(path, "r")
    except OSError as error:
        raise ModelFormatError(f"{path}: cannot read as HDF5 ({error}); expected {BFM2017_LAYOUT}") from error
    with h5:
        mean = _flat_shape(_h5_dataset(h5, "shape/model/mean", path), "shape/model/mean", path)
        shape_basis = _statismo_offsets(h5, "shape", mean.size, path, num_shape)
        if "expression/model" in h5:
            expression_mean = _h5_dataset(h5, "expression/model/mean", path)
            mean = mean + _flat_shape(expression_mean, "expression/model/mean", path, mean.size)
            expression_basis = _statismo_offsets(h5, "expression", mean.size, path, num_expression)
        elif num_expression:
            raise ValueError(
                f"{path}: asked for {num_expression} expression components, the file has no expression model"
            )
        else:
            expression_basis = np.zeros((0, mean.size // 3, 3))
        cells = _h5_dataset(h5, "shape/representer/cells", path)
    if cells.ndim != 2 or 3 not in cells.shape:
        raise ModelFormatError(f"{path}: shape/representer/cells has shape {list(cells.shape)}, expected [3, F]")
    triangles = cells.T if cells.shape[0] == 3 else cells
    mean = mean.reshape(-1, 3)
    if shape_basis.shape[1] != len(mean) or expression_basis.shape[1] != len(mean):
        raise ModelFormatError(f"{path}: the PCA bases and the mean have different vertex counts")
    return _build(path, mean, shape_basis, expression_basis, triangles, landmark_indices, uv_mesh, recentre)


class _PickledObject:
    """Stand-in for any class a model pickle names (chumpy arrays, scipy sparse matrices, ...).

    Nothing from the pickle is imported or executed: constructor arguments are dropped and the pickled
    state is kept, from which :func:`_plain_array` recovers a chumpy array's data (its ``x``).
    """

    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        del args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ModelUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers; every other class becomes a :class:`_PickledObject`."""

    NUMPY_NAMES = frozenset({"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"})
    BUILTIN_NAMES = frozenset({"object", "set", "frozenset", "slice", "complex", "bytearray", "list", "dict", "tuple"})

    def find_class(self, module: str, name: str) -> Any:
        root = module.split(".")[0]
        if root == "numpy" and name in self.NUMPY_NAMES:
            try:  # numpy >= 2 moved numpy.core to numpy._core
                return super().find_class(module.replace("numpy.core", "numpy._core", 1), name)
            except ModuleNotFoundError:
                return super().find_class(module, name)
        if (module in {"builtins", "__builtin__"} and name in self.BUILTIN_NAMES) or (module, name) in {
            ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"), ("_codecs", "encode"),
        }:  # fmt: skip
            return super().find_class(module, name)
        return type(name, (_PickledObject,), {"__module__": module})


def _plain_array(value: Any, key: str, path: Path) -> np.ndarray:
    """A numpy array from a plain array or a chumpy ``Ch`` stand-in (its data lives in state ``x``)."""
    if isinstance(value, _PickledObject):
        state = value.state if isinstance(value.state, dict) else {}
        if "x" not in state:
            raise ModelFormatError(
                f"{path}: {key!r} is a pickled {type(value).__module__}.{type(value).__name__} without data"
            )
        value = state["x"]
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.number):
        raise ModelFormatError(f"{path}: {key!r} is not a numeric array")
    return array


FLAME_LAYOUT = "a FLAME model pickle with v_template [V,3], shapedirs [V,3,300+Ke] and f [F,3]"


def load_flame(
    path: str | os.PathLike,
    landmark_indices: LandmarkSource | None,
    num_shape: int | None = None,
    num_expression: int | None = None,
    uv_mesh: str | os.PathLike | None = None,
    recentre: bool = True,
) -> MorphableModel:
    """Load a FLAME model (``generic_model.pkl``, ``flame2023.pkl``, ...); chumpy is not needed.

    FLAME is in metres (converted to mm); its ``shapedirs [V, 3, 300 + Ke]`` hold the 300 identity
    directions then the expression directions, already scaled by their standard deviations. Only the
    linear part is used (template + shape + expression); pose (neck, jaw, eyes) is not modelled.
    ``num_shape``/``num_expression`` keep the first components (default all: 300 and, in FLAME 2020
    and 2023, 100). ``uv_mesh``: FLAME's ``head_template.obj`` (same vertex order) gives the UV layout.
    """
    path = _check_file(path, "FLAME model", f"{FLAME_LAYOUT}; see docs/assets.md")
    try:
        with path.open("rb") as handle:
            data = _ModelUnpickler(handle, encoding="latin1").load()
    except Exception as error:  # any failure to parse the file is reported as a format error
        raise ModelFormatError(f"{path}: cannot read as a FLAME pickle ({type(error).__name__}: {error})") from error
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path}: expected {FLAME_LAYOUT}, found a pickled {type(data).__name__}")
    template = _plain_array(_require(data, "v_template", path, FLAME_LAYOUT), "v_template", path)
    directions = _plain_array(_require(data, "shapedirs", path, FLAME_LAYOUT), "shapedirs", path)
    triangles = _plain_array(_require(data, "f", path, FLAME_LAYOUT), "f", path)
    if template.ndim != 2 or template.shape[1] != 3:
        raise ModelFormatError(f"{path}: v_template has shape {list(template.shape)}, expected [V, 3]")
    if directions.ndim != 3 or directions.shape[:2] != template.shape or directions.shape[2] < FLAME_SHAPE_COMPONENTS:
        raise ModelFormatError(
            f"{path}: shapedirs has shape {list(directions.shape)}, expected "
            f"[{template.shape[0]}, 3, {FLAME_SHAPE_COMPONENTS}+Ke]"
        )
    available_expression = directions.shape[2] - FLAME_SHAPE_COMPONENTS
    num_shape = FLAME_SHAPE_COMPONENTS if num_shape is None else num_shape
    num_expression = available_expression if num_expression is None else num_expression
    if not 0 <= num_shape <= FLAME_SHAPE_COMPONENTS:
        raise ValueError(f"{path}: num_shape must lie in [0, {FLAME_SHAPE_COMPONENTS}], got {num_shape}")
    if not 0 <= num_expression <= available_expression:
        raise ValueError(f"{path}: num_expression must lie in [0, {available_expression}], got {num_expression}")
    modes = np.moveaxis(directions.astype(np.float32), 2, 0) * np.float32(METRE_TO_MM)
    shape_basis = modes[:num_shape]
    expression_basis = modes[FLAME_SHAPE_COMPONENTS : FLAME_SHAPE_COMPONENTS + num_expression]
    mean = template.astype(np.float64) * METRE_TO_MM
    return _build(path, mean, shape_basis, expression_basis, triangles, landmark_indices, uv_mesh, recentre)


FORMATS = {".npz": "npz", ".mat": "bfm2009", ".h5": "bfm2017", ".hdf5": "bfm2017", ".pkl": "flame"}


def load_morphable_model(
    path: str | os.PathLike,
    format: str = "auto",
    landmark_indices: LandmarkSource | None = None,
    uv_mesh: str | os.PathLike | None = None,
    **options: Any,
) -> MorphableModel:
    """Load any supported model; ``format`` is ``auto`` (by extension), ``npz``, ``bfm2009``, ``bfm2017``
    (also BFM 2019) or ``flame``. ``options`` go to the format's loader (``num_shape``, ...).

    For ``npz`` (the generic layout of :meth:`MorphableModel.from_npz`) ``landmark_indices`` and
    ``uv_mesh`` optionally replace the file's own.
    """
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower()) if format == "auto" else format
    if kind is None:
        raise ValueError(
            f"{path}: cannot tell the model format from the extension {path.suffix!r}; "
            f"pass format= one of {sorted(set(FORMATS.values()))} (known extensions: {sorted(FORMATS)})"
        )
    loaders = {"bfm2009": load_bfm2009, "bfm2017": load_bfm2017, "flame": load_flame}
    if kind in loaders:
        return loaders[kind](path, landmark_indices, uv_mesh=uv_mesh, **options)
    if kind != "npz":
        raise ValueError(f"unknown model format {kind!r}; expected auto, npz, {', '.join(loaders)}")
    if options:
        raise TypeError(f"{path}: the npz format takes no options, got {sorted(options)}")
    model = MorphableModel.from_npz(_check_file(path, "morphable model", "an .npz in fastganfit's layout"))
    if landmark_indices is None and uv_mesh is None:
        return model
    arrays = model.arrays()
    if landmark_indices is not None:
        arrays["landmark_indices"] = read_landmark_indices(landmark_indices, model.num_vertices, path)
    if uv_mesh is not None:
        arrays["uvs"], arrays["face_uvs"] = _uv_layout(uv_mesh, model.num_vertices, arrays["faces"])
    return MorphableModel.from_arrays(arrays, source=str(path))
