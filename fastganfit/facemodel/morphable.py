"""Linear 3D morphable model: mean + identity (shape) modes + expression blendshapes, in millimetres."""

from __future__ import annotations

import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

REQUIRED_NPZ_KEYS = ("mean", "shape_basis", "expression_basis", "faces", "landmark_indices")


def default_ict_path() -> Path:
    """Path of the embedded ICT-FaceKit model (``fastganfit/assets/ict_face.npz``)."""
    return Path(str(resources.files("fastganfit") / "assets" / "ict_face.npz"))


class MorphableModel(nn.Module):
    """``vertices = mean + shape @ shape_basis + expression @ expression_basis``.

    Coefficients are zero-centred and unit-variance: all-zero gives the mean face with a neutral
    expression, and ``N(0, 1)`` samples give plausible faces (bases are pre-scaled by their standard
    deviations). Geometry is in millimetres, right-handed, +Y up, +Z towards the camera.

    Buffers: ``mean [V,3]``, ``shape_basis [Ks,V,3]``, ``expression_basis [Ke,V,3]``, ``faces [F,3]``,
    ``landmark_indices [68]`` and, when the model has a UV layout, ``uvs [T,2]`` and ``face_uvs [F,3]``
    (per-corner UV indices, so seams are kept); ``symmetry [V]`` maps each vertex to its mirror image.
    """

    def __init__(
        self,
        mean: torch.Tensor,
        shape_basis: torch.Tensor,
        expression_basis: torch.Tensor,
        faces: torch.Tensor,
        landmark_indices: torch.Tensor,
        uvs: torch.Tensor | None = None,
        face_uvs: torch.Tensor | None = None,
        symmetry: torch.Tensor | None = None,
        expression_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        num_vertices = mean.shape[0]
        _check_shape("mean", mean, (num_vertices, 3))
        _check_shape("shape_basis", shape_basis, (shape_basis.shape[0], num_vertices, 3))
        _check_shape("expression_basis", expression_basis, (expression_basis.shape[0], num_vertices, 3))
        _check_shape("faces", faces, (faces.shape[0], 3))
        if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= num_vertices):
            low, high = int(faces.min()), int(faces.max())
            raise ValueError(f"faces: indices must lie in [0, {num_vertices}), got [{low}, {high}]")
        landmarks_in_range = not landmark_indices.numel() or (
            int(landmark_indices.min()) >= 0 and int(landmark_indices.max()) < num_vertices
        )
        if landmark_indices.ndim != 1 or not landmarks_in_range:
            raise ValueError(f"landmark_indices: expected a 1-D tensor of vertex indices in [0, {num_vertices})")
        if (uvs is None) != (face_uvs is None):
            raise ValueError("uvs and face_uvs must be given together")
        if face_uvs is not None:
            _check_shape("face_uvs", face_uvs, tuple(faces.shape))
            _check_shape("uvs", uvs, (uvs.shape[0], 2))
            if face_uvs.numel() and (int(face_uvs.min()) < 0 or int(face_uvs.max()) >= uvs.shape[0]):
                raise ValueError(f"face_uvs: indices must lie in [0, {uvs.shape[0]}) (the number of uvs)")
        if expression_names is not None and len(expression_names) != expression_basis.shape[0]:
            raise ValueError(
                f"expression_names: {len(expression_names)} names for {expression_basis.shape[0]} expression modes"
            )
        self.register_buffer("mean", mean.float())
        self.register_buffer("shape_basis", shape_basis.float())
        self.register_buffer("expression_basis", expression_basis.float())
        self.register_buffer("faces", faces.long())
        self.register_buffer("landmark_indices", landmark_indices.long())
        self.register_buffer("uvs", None if uvs is None else uvs.float())
        self.register_buffer("face_uvs", None if face_uvs is None else face_uvs.long())
        self.register_buffer("symmetry", None if symmetry is None else symmetry.long())
        self.expression_names = list(expression_names or [f"expression{i:03d}" for i in range(self.num_expression)])

    @property
    def num_vertices(self) -> int:
        """Number of vertices V."""
        return self.mean.shape[0]

    @property
    def num_shape(self) -> int:
        """Number of identity (shape) coefficients Ks."""
        return self.shape_basis.shape[0]

    @property
    def num_expression(self) -> int:
        """Number of expression coefficients Ke."""
        return self.expression_basis.shape[0]

    def forward(self, shape: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """Vertices ``[B, V, 3]`` in mm from ``shape [B, Ks]`` and ``expression [B, Ke]`` coefficients."""
        if shape.ndim != 2 or shape.shape[1] != self.num_shape:
            raise ValueError(f"shape: expected [B, {self.num_shape}], got {list(shape.shape)}")
        if expression.ndim != 2 or expression.shape[1] != self.num_expression:
            raise ValueError(f"expression: expected [B, {self.num_expression}], got {list(expression.shape)}")
        if shape.shape[0] != expression.shape[0]:
            raise ValueError(f"shape and expression batch sizes differ: {shape.shape[0]} vs {expression.shape[0]}")
        offsets = torch.einsum("bk,kvc->bvc", shape, self.shape_basis)
        offsets = offsets + torch.einsum("bk,kvc->bvc", expression, self.expression_basis)
        return self.mean.unsqueeze(0) + offsets

    def landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        """The landmark vertices ``[B, L, 3]`` of ``vertices [B, V, 3]``."""
        return vertices[:, self.landmark_indices]

    def mean_vertices(self, batch_size: int = 1) -> torch.Tensor:
        """The mean face ``[B, V, 3]`` (all-zero coefficients)."""
        return self.mean.unsqueeze(0).expand(batch_size, -1, -1)

    def arrays(self) -> dict[str, np.ndarray]:
        """The model as numpy arrays in the generic ``.npz`` layout (see :func:`MorphableModel.from_npz`)."""
        out = {
            key: getattr(self, key).detach().cpu().numpy()
            for key in (*REQUIRED_NPZ_KEYS, "uvs", "face_uvs", "symmetry")
            if getattr(self, key) is not None
        }
        out["expression_names"] = np.asarray(self.expression_names)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], source: str = "arrays") -> MorphableModel:
        """Build a model from numpy arrays with the keys of the generic ``.npz`` layout."""
        missing = [key for key in REQUIRED_NPZ_KEYS if key not in arrays]
        if missing:
            raise KeyError(f"{source}: missing arrays {missing}; required keys are {list(REQUIRED_NPZ_KEYS)}")

        def optional(key: str) -> torch.Tensor | None:
            return torch.from_numpy(np.asarray(arrays[key])) if key in arrays else None

        names = [str(name) for name in arrays["expression_names"]] if "expression_names" in arrays else None
        try:
            return cls(
                mean=torch.from_numpy(np.asarray(arrays["mean"], np.float32)),
                shape_basis=torch.from_numpy(np.asarray(arrays["shape_basis"], np.float32)),
                expression_basis=torch.from_numpy(np.asarray(arrays["expression_basis"], np.float32)),
                faces=torch.from_numpy(np.asarray(arrays["faces"], np.int64)),
                landmark_indices=torch.from_numpy(np.asarray(arrays["landmark_indices"], np.int64)),
                uvs=optional("uvs"),
                face_uvs=optional("face_uvs"),
                symmetry=optional("symmetry"),
                expression_names=names,
            )
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from error

    @classmethod
    def from_npz(cls, path: str | Path) -> MorphableModel:
        """Load the generic ``.npz`` layout.

        Required: ``mean [V,3]`` (mm), ``shape_basis [Ks,V,3]``, ``expression_basis [Ke,V,3]`` (mm,
        scaled by each mode's standard deviation), ``faces [F,3]``, ``landmark_indices [68]``.
        Optional: ``uvs [T,2]`` with ``face_uvs [F,3]``, ``symmetry [V]``, ``expression_names [Ke]``.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"morphable model file {path} does not exist (expected an .npz with mean, shape_basis, "
                "expression_basis, faces and landmark_indices; docs/facemodels.md)"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path}: cannot be read as an .npz of arrays ({error})") from error
        return cls.from_arrays(arrays, source=str(path))

    @classmethod
    def ict(cls) -> MorphableModel:
        """The embedded ICT-FaceKit face model: 9,409 vertices, 100 identity modes, 53 expressions."""
        return cls.from_npz(default_ict_path())


def _check_shape(name: str, tensor: torch.Tensor, expected: tuple[int, ...]) -> None:
    if tuple(tensor.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {list(expected)}, got {list(tensor.shape)}")
