"""Tiny files in the real formats of the assets users bring (shared by the loader, identity, heatmap, texture,
config-group and end-to-end tests): BFM 2009 ``.mat``, BFM 2017 statismo ``.h5``, FLAME ``.pkl`` (as MPI ships
it, with chumpy objects), a UV OBJ, landmark indices, ArcFace (arcface_torch names), face-alignment's FAN, timm
weights, an exported texture GAN and a PCA texture ``.npz``.

The face-model files hold a 5x5 grid face (25 vertices, 32 triangles). Network weight files have the real keys and
shapes with random weights (the layout and the plumbing are tested, not accuracy): ArcFace 170 / 260 MB, FAN 95 MB.
Weights repeated to shrink the files made FAN's heatmaps overflow to inf, so they are not used."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path
from typing import ClassVar
from unittest import mock

import h5py
import numpy as np
import scipy.io
import scipy.sparse
import torch

from fastganfit.io.mesh_export import write_obj


def face_mesh() -> tuple[np.ndarray, np.ndarray]:
    """A 5x5 grid (mm) bulging towards +Z like a face, with triangles wound counter-clockwise from +Z."""
    y, x = np.mgrid[-2:3, -2:3].astype(np.float64)
    z = 40.0 - 4.0 * (x**2 + y**2) + 0.3 * x  # nose tip at the centre, slightly asymmetric
    vertices = np.stack([x * 30.0 + 3.0, y * 35.0 - 7.0, z + 20.0], -1).reshape(-1, 3)
    faces = []
    for r in range(4):
        for c in range(4):
            a, b, d, e = r * 5 + c, r * 5 + c + 1, (r + 1) * 5 + c, (r + 1) * 5 + c + 1
            faces += [[a, b, e], [a, e, d]]
    return vertices, np.asarray(faces, np.int64)


MEAN_MM, FACES = face_mesh()
V = len(MEAN_MM)
LANDMARKS = (np.arange(68) * 7) % V


def orthonormal(rows: int, cols: int, seed: int) -> np.ndarray:
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(rows, cols)))[0]


def write_bfm2009(path: Path, drop: str | None = None, **override: np.ndarray) -> dict[str, np.ndarray]:
    """01_MorphableModel.mat layout: micrometres, shapePC orthonormal, shapeEV standard deviations."""
    rng = np.random.default_rng(1)
    arrays = {
        "shapeMU": (MEAN_MM.reshape(-1, 1) * 1000.0).astype(np.float32),
        "shapePC": orthonormal(3 * V, 4, seed=2).astype(np.float32),
        "shapeEV": np.array([[4000.0], [3000.0], [2000.0], [500.0]], np.float32),
        "texMU": rng.uniform(0, 255, size=(3 * V, 1)).astype(np.float32),
        "texPC": orthonormal(3 * V, 4, seed=3).astype(np.float32),
        "texEV": np.ones((4, 1), np.float32),
        "tl": (FACES[:, [0, 2, 1]] + 1).astype(np.float64),  # 1-based, wound clockwise as in BFM 2009
        "segbin": np.ones((V, 4), np.uint8),
    }
    arrays.update(override)
    if drop:
        del arrays[drop]
    scipy.io.savemat(path, arrays)
    return arrays


def write_bfm2017(path: Path, drop: str | None = None, scaled_basis: bool = False, **override) -> dict[str, np.ndarray]:
    """Statismo layout of model2017-1_*.h5 / model2019_*.h5: mm, orthonormal pcaBasis + pcaVariance."""
    rng = np.random.default_rng(4)
    arrays = {
        "shape/model/mean": MEAN_MM.reshape(-1).astype(np.float32),
        # a cropped model (like face12): rows of a larger orthonormal basis, so columns are not unit length
        "shape/model/pcaBasis": orthonormal(3 * V + 30, 5, seed=5)[: 3 * V].astype(np.float32),
        "shape/model/pcaVariance": np.array([25.0, 16.0, 9.0, 4.0, 1.0], np.float32),
        "shape/model/noiseVariance": np.array([1e-4], np.float32),
        "shape/representer/points": MEAN_MM.T.astype(np.float32),
        "shape/representer/cells": FACES.T.astype(np.int32),
        "color/model/mean": rng.uniform(size=3 * V).astype(np.float32),
        "color/model/pcaBasis": orthonormal(3 * V, 2, seed=6).astype(np.float32),
        "color/model/pcaVariance": np.array([0.1, 0.05], np.float32),
        "color/representer/cells": FACES.T.astype(np.int32),
        "expression/model/mean": rng.normal(scale=0.5, size=3 * V).astype(np.float32),
        "expression/model/pcaBasis": orthonormal(3 * V, 3, seed=7).astype(np.float32),
        "expression/model/pcaVariance": np.array([36.0, 4.0, 0.25], np.float32),
        "expression/representer/cells": FACES.T.astype(np.int32),
    }
    if scaled_basis:  # old statismo (0.8) files store U * sqrt(variance): the reader normalises the columns
        for group in ("shape", "expression"):
            arrays[f"{group}/model/pcaBasis"] *= np.linspace(2.0, 9.0, arrays[f"{group}/model/pcaVariance"].size)
    arrays.update(override)
    if drop:
        arrays = {key: value for key, value in arrays.items() if not key.startswith(drop)}
    with h5py.File(path, "w") as h5:
        for key, value in arrays.items():
            h5[key] = value
        for group in ("shape", "color", "expression"):
            if group in h5:
                h5[f"{group}/version/majorVersion"] = 0
                h5[f"{group}/version/minorVersion"] = 8 if scaled_basis else 9
            if f"{group}/representer" in h5:
                h5[f"{group}/representer"].attrs["datasetType"] = "POLYGON_MESH"
    return arrays


def flame_arrays(**override) -> dict[str, object]:
    """generic_model.pkl layout: metres, shapedirs [V, 3, 300 shape + 100 expression], f uint32."""
    rng = np.random.default_rng(8)
    arrays = {
        "v_template": MEAN_MM / 1000.0,
        "shapedirs": rng.normal(scale=1e-3, size=(V, 3, 400)),
        "posedirs": rng.normal(size=(V, 3, 36)),
        "J_regressor": scipy.sparse.csc_matrix(rng.uniform(size=(5, V))),
        "weights": rng.uniform(size=(V, 5)),
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        "f": FACES.astype(np.uint32),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    arrays.update(override)
    return arrays


class FakeCh:
    """Pickles like chumpy's ``Ch``: ``chumpy.ch.Ch`` rebuilt from a state dict whose ``x`` is the data."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __getstate__(self) -> dict[str, object]:
        return {"x": self.x, "_dirty_vars": set(), "_itr": None, "_depends_on_deps": {}, "_make_dense": False}


def chumpy_pickle(arrays: dict[str, object]) -> bytes:
    """Pickle ``arrays`` with v_template and shapedirs as chumpy objects, as MPI ships FLAME."""
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    module.Ch = type("Ch", (FakeCh,), {"__module__": "chumpy.ch"})
    package.ch = module
    payload = {key: module.Ch(value) if key in ("v_template", "shapedirs") else value for key, value in arrays.items()}
    with mock.patch.dict(sys.modules, {"chumpy": package, "chumpy.ch": module}):
        data = pickle.dumps(payload, protocol=2)
    assert b"chumpy.ch" in data and "chumpy" not in sys.modules
    return data


def write_flame(path: Path) -> Path:
    """generic_model.pkl as MPI ships it (chumpy objects, Python 2 protocol)."""
    path.write_bytes(chumpy_pickle(flame_arrays()))
    return path


def write_uv_mesh(path: Path, scale: float = 1.0) -> Path:
    """An OBJ of the grid face (vertices times ``scale``: 1e-3 for FLAME's metres) with a planar UV layout."""
    uvs = (MEAN_MM[:, :2] - MEAN_MM[:, :2].min(0)) / np.ptp(MEAN_MM[:, :2], axis=0)
    write_obj(path, MEAN_MM * scale, FACES, uvs, FACES)
    return path


def write_landmark_indices(path: Path) -> Path:
    """68 0-based vertex indices of the grid face, one per line (the ``.txt`` form)."""
    np.savetxt(path, LANDMARKS, fmt="%d")
    return path


def pca_texture_arrays(seed: int = 0, resolution: int = 4, variances: tuple[float, ...] = (4.0, 1.0, 0.25)) -> dict:
    """A tiny PCA texture: mean in [0.3, 0.7], modes of at most 0.02, so |latent| <= 2 never saturates."""
    rng = np.random.default_rng(seed)
    count = len(variances)
    return {
        "mean": rng.uniform(0.3, 0.7, (3, resolution, resolution)).astype(np.float32),
        "basis": rng.uniform(-0.02, 0.02, (count, 3, resolution, resolution)).astype(np.float32),
        "variances": np.asarray(variances, np.float32),
    }


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


#: A texture generator small enough for tests (16 px UV maps).
TINY_GENERATOR = {"resolution": 16, "z_dim": 16, "w_dim": 16, "mapping_layers": 2, "base_channels": 16,
                  "max_channels": 32}  # fmt: skip


def write_texture_gan(path: Path) -> Path:
    """A generator export as ``scripts/export_texture_prior.py`` writes it (random weights, measured W statistics)."""
    from fastganfit.texture.generator import TextureGenerator

    generator = TextureGenerator(**TINY_GENERATOR)
    generator.update_w_statistics(200)
    torch.save(generator.checkpoint(), path)
    return path


def write_arcface_weights(path: Path, arch: str = "iresnet50") -> Path:
    """An arcface_torch ``backbone.pth``: an IResNet state dict with arcface_torch's names (random weights)."""
    from fastganfit.perception.arcface import build_iresnet

    torch.save(build_iresnet(arch).state_dict(), path)
    return path


def write_fan_weights(path: Path) -> Path:
    """face-alignment's ``2DFAN4-11f355bf06.pth.tar`` layout: the 2D-FAN-4 state dict (random weights)."""
    from face_alignment.models import FAN

    torch.save(FAN(4).state_dict(), path)
    return path


def write_timm_weights(path: Path, name: str = "resnet10t") -> Path:
    """A local timm weights file of the 3-channel model ``name`` (random weights)."""
    import timm

    torch.save(timm.create_model(name, pretrained=False).state_dict(), path)
    return path


def write_full_bfm2017(path: Path) -> Path:
    """:func:`write_bfm2017` with the real file's 100 expression modes (unit columns, decreasing variances), so
    documented truncations such as ``num_expression=50`` apply."""
    rng = np.random.default_rng(10)
    basis = rng.normal(size=(3 * V, 100))
    write_bfm2017(path, **{"expression/model/pcaBasis": (basis / np.linalg.norm(basis, axis=0)).astype(np.float32),
                           "expression/model/pcaVariance": np.geomspace(36.0, 0.01, 100).astype(np.float32)})
    return path


def write_full_pca_texture(path: Path) -> Path:
    """A 16 px PCA texture with 100 modes, so documented truncations such as ``num_components=80`` apply."""
    return write_npz(path, **pca_texture_arrays(resolution=16, variances=tuple(np.geomspace(4.0, 0.01, 100))))


class AssetFiles:
    """One tiny file per asset format in ``folder``, each written on first use: ``assets["bfm2009"]`` -> its path."""

    FILES: ClassVar[dict[str, str]] = {
        "bfm2009": "01_MorphableModel.mat", "bfm2017": "model2017-1_bfm_nomouth.h5", "flame": "generic_model.pkl",
        "npz": "my_model.npz", "landmarks": "ibug68.txt", "uv_mesh": "uv.obj", "gan": "my_prior.pt",
        "pca": "my_texture_pca.npz", "arcface_iresnet50": "r50_backbone.pth", "arcface_iresnet100": "r100_backbone.pth",
        "fan": "2DFAN4-11f355bf06.pth.tar", "timm": "resnet10t.pth", "ckpt": "last.ckpt", "image": "photo.png",
    }  # fmt: skip

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __getitem__(self, name: str) -> Path:
        path = self.folder / self.FILES[name]
        if not path.exists():
            self.write(name, path)
        return path

    def write(self, name: str, path: Path) -> None:
        """Write asset ``name`` to ``path``."""
        if name == "npz":
            from fastganfit.facemodel.loaders import load_bfm2009

            model = load_bfm2009(self["bfm2009"], self["landmarks"], uv_mesh=self["uv_mesh"])
            write_npz(path, **model.arrays())
        elif name.startswith("arcface_"):
            write_arcface_weights(path, name.removeprefix("arcface_"))
        elif name == "ckpt":
            from tiny_checkpoint import write_tiny_checkpoint

            write_tiny_checkpoint(path)
        elif name == "image":
            from PIL import Image
            from skimage import data

            Image.fromarray(data.astronaut()).save(path)
        else:
            writers = {
                "bfm2009": write_bfm2009, "bfm2017": write_full_bfm2017, "flame": write_flame,
                "landmarks": write_landmark_indices, "uv_mesh": write_uv_mesh, "gan": write_texture_gan,
                "pca": write_full_pca_texture, "fan": write_fan_weights,
                "timm": write_timm_weights,
            }  # fmt: skip
            writers[name](path)

    #: The ``paths`` keys (fastganfit/conf/paths/default.yaml) each tiny file stands in for (heatmap_backbone left
    #: out: naming it changes every model).
    PATHS: ClassVar[dict[str, str]] = {
        "bfm2009": "bfm2009", "bfm2009_landmarks": "landmarks", "bfm2009_uv": "uv_mesh",
        "bfm2017": "bfm2017", "bfm2017_landmarks": "landmarks", "bfm2017_uv": "uv_mesh",
        "flame": "flame", "flame_landmarks": "landmarks", "flame_uv": "uv_mesh", "facemodel_npz": "npz",
        "arcface_iresnet50": "arcface_iresnet50", "arcface_iresnet100": "arcface_iresnet100", "fan": "fan",
        "texture_gan": "gan", "texture_pca": "pca",
    }  # fmt: skip

    def write_local_paths(self, config_dir: Path) -> Path:
        """A user's local paths file, ``config_dir/local/paths.yaml`` (found with ``FASTGANFIT_CONFIG_DIR=config_dir``),
        naming these tiny files for every asset key; call :meth:`write_referenced` before building from it."""
        local = config_dir / "local" / "paths.yaml"
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text("".join(f"{key}: {self.folder / self.FILES[name]}\n" for key, name in self.PATHS.items()))
        return local

    def write_referenced(self, component: object) -> None:
        """Write the tiny files a composed component config refers to (``${paths.bfm2009}``)."""
        from omegaconf import OmegaConf

        for key in self.PATHS:
            if f"${{paths.{key}}}" in str(OmegaConf.to_container(component, resolve=False)):
                self[self.PATHS[key]]
