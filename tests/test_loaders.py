"""MorphableModel loaders: tiny files in the real BFM 2009 / BFM 2017 / FLAME / npz layouts."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from asset_files import (
    FACES,
    LANDMARKS,
    MEAN_MM,
    V,
    chumpy_pickle,
    flame_arrays,
    orthonormal,
    write_bfm2009,
    write_bfm2017,
)
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from fastganfit.facemodel.loaders import (
    ModelFormatError,
    load_bfm2009,
    load_bfm2017,
    load_flame,
    load_morphable_model,
)
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.io.mesh_export import write_obj

CONF = Path(__file__).resolve().parents[1] / "fastganfit" / "conf" / "facemodel"
PATHS = CONF.parent / "paths" / "default.yaml"


def with_paths(config: DictConfig, **files: str) -> DictConfig:
    """``config`` (one component's YAML) as a composed config has it: next to the paths group (``${paths.bfm2009}``),
    its defaults with ``files`` set."""
    paths = OmegaConf.merge(OmegaConf.load(PATHS), files)
    return OmegaConf.create({"paths": paths, "component": config}).component


def vertices_of(model: MorphableModel, shape: np.ndarray, expression: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.tensor(shape, dtype=torch.float32)[None], torch.tensor(expression, dtype=torch.float32)[None])
    return out[0].double().numpy()


def test_bfm2009_vertices_in_mm_and_basis_scaled(tmp_path: Path) -> None:
    arrays = write_bfm2009(tmp_path / "01_MorphableModel.mat")
    model = load_bfm2009(tmp_path / "01_MorphableModel.mat", LANDMARKS.tolist(), recentre=False)
    assert (model.num_vertices, model.num_shape, model.num_expression) == (V, 4, 0)
    alpha = np.array([1.0, -2.0, 0.5, 3.0])
    expected = (arrays["shapeMU"][:, 0] + arrays["shapePC"] @ (alpha * arrays["shapeEV"][:, 0])) / 1000.0
    np.testing.assert_allclose(vertices_of(model, alpha, np.zeros(0)), expected.reshape(-1, 3), atol=1e-4)
    np.testing.assert_allclose(model.mean.numpy(), MEAN_MM, atol=1e-4)
    # each mode's offset has norm = its standard deviation (mm): N(0, 1) coefficients
    np.testing.assert_allclose(model.shape_basis.flatten(1).norm(dim=1).numpy(), [4.0, 3.0, 2.0, 0.5], rtol=1e-5)
    # BFM 2009's clockwise triangles come out counter-clockwise (facing the camera), 0-based
    np.testing.assert_array_equal(model.faces.numpy(), FACES)
    np.testing.assert_array_equal(model.landmark_indices.numpy(), LANDMARKS)
    assert model.uvs is None and model.symmetry.shape == (V,)


def test_recentre_moves_origin_to_canonical_pivot(tmp_path: Path) -> None:
    write_bfm2009(tmp_path / "m.mat")
    model = load_bfm2009(tmp_path / "m.mat", LANDMARKS, num_shape=2)
    landmarks = model.mean[model.landmark_indices].double()
    centre = (landmarks.min(0).values + landmarks.max(0).values) / 2
    np.testing.assert_allclose(centre[:2].numpy(), [0.0, 0.0], atol=1e-4)
    assert landmarks[:, 2].mean().item() == pytest.approx(85.0, abs=1e-4)
    raw = load_bfm2009(tmp_path / "m.mat", LANDMARKS, num_shape=2, recentre=False)
    offset = (raw.mean - model.mean).numpy()
    np.testing.assert_allclose(offset, np.broadcast_to(offset[0], offset.shape), atol=1e-4)  # a pure translation
    torch.testing.assert_close(model.shape_basis, raw.shape_basis)
    assert model.num_shape == 2


def test_bfm2009_matlab_v73_file(tmp_path: Path) -> None:
    """MATLAB v7.3 files are HDF5 with a 512-byte header; arrays are stored transposed."""
    arrays = write_bfm2009(tmp_path / "v5.mat")
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w", userblock_size=512) as mat:
        for key in ("shapeMU", "shapePC", "shapeEV", "tl"):
            mat[key] = arrays[key].T
    with path.open("r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(124) + b"\x00\x02IM")
    v5, v73 = load_bfm2009(tmp_path / "v5.mat", LANDMARKS), load_bfm2009(path, LANDMARKS)
    for name in ("mean", "shape_basis", "faces"):
        torch.testing.assert_close(getattr(v73, name), getattr(v5, name))


def test_bfm2017_mean_includes_expression_mean_and_bases_scaled(tmp_path: Path) -> None:
    arrays = write_bfm2017(tmp_path / "model2017-1_bfm_nomouth.h5")
    model = load_bfm2017(tmp_path / "model2017-1_bfm_nomouth.h5", LANDMARKS, recentre=False)
    assert (model.num_vertices, model.num_shape, model.num_expression) == (V, 5, 3)
    alpha, beta = np.array([1.0, 0.0, -1.0, 2.0, 0.5]), np.array([-1.0, 2.0, 1.0])
    expected = (
        arrays["shape/model/mean"]
        + arrays["expression/model/mean"]
        + arrays["shape/model/pcaBasis"] @ (alpha * np.sqrt(arrays["shape/model/pcaVariance"]))
        + arrays["expression/model/pcaBasis"] @ (beta * np.sqrt(arrays["expression/model/pcaVariance"]))
    )
    np.testing.assert_allclose(vertices_of(model, alpha, beta), expected.reshape(-1, 3), atol=1e-4)
    np.testing.assert_allclose(model.expression_basis.flatten(1).norm(dim=1).numpy(), [6.0, 2.0, 0.5], rtol=1e-5)
    np.testing.assert_array_equal(model.faces.numpy(), FACES)


def test_bfm2017_old_statismo_basis_and_truncation(tmp_path: Path) -> None:
    arrays = write_bfm2017(tmp_path / "old.h5", scaled_basis=True)
    old = load_bfm2017(tmp_path / "old.h5", LANDMARKS, num_shape=3, num_expression=2)
    assert (old.num_shape, old.num_expression) == (3, 2)
    for group, loaded in (("shape", old.shape_basis), ("expression", old.expression_basis)):
        basis = arrays[f"{group}/model/pcaBasis"].astype(np.float64)
        unit = basis / np.linalg.norm(basis, axis=0)
        expected = (unit * np.sqrt(arrays[f"{group}/model/pcaVariance"])).T.reshape(-1, V, 3)
        np.testing.assert_allclose(loaded.numpy(), expected[: loaded.shape[0]], rtol=1e-5, atol=1e-6)


def test_bfm2017_without_expression_model(tmp_path: Path) -> None:
    arrays = write_bfm2017(tmp_path / "shape_only.h5", drop="expression")
    model = load_bfm2017(tmp_path / "shape_only.h5", LANDMARKS, recentre=False)
    assert model.num_expression == 0
    np.testing.assert_allclose(model.mean.numpy(), arrays["shape/model/mean"].reshape(-1, 3), atol=1e-5)
    with pytest.raises(ValueError, match="no expression model"):
        load_bfm2017(tmp_path / "shape_only.h5", LANDMARKS, num_expression=2)


@pytest.mark.parametrize("chumpy", [False, True], ids=["numpy-pickle", "chumpy-pickle"])
def test_flame_metres_to_mm_shape_then_expression(tmp_path: Path, chumpy: bool) -> None:
    arrays = flame_arrays()
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(chumpy_pickle(arrays) if chumpy else pickle.dumps(arrays, protocol=4))
    model = load_flame(path, LANDMARKS, num_shape=4, num_expression=3, recentre=False)
    assert (model.num_shape, model.num_expression) == (4, 3)
    alpha, beta = np.array([1.0, -1.0, 2.0, 0.5]), np.array([0.5, 1.0, -2.0])
    dirs = arrays["shapedirs"]
    expected = (arrays["v_template"] + dirs[:, :, :4] @ alpha + dirs[:, :, 300:303] @ beta) * 1000.0
    np.testing.assert_allclose(vertices_of(model, alpha, beta), expected, atol=1e-4)
    np.testing.assert_array_equal(model.faces.numpy(), FACES)
    full = load_flame(path, LANDMARKS)
    assert (full.num_shape, full.num_expression) == (300, 100)


def test_flame_pickle_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    payload = pickle.dumps(flame_arrays(v_template=Exploit()), protocol=4)
    (tmp_path / "evil.pkl").write_bytes(payload)
    with pytest.raises(ModelFormatError, match=r"'v_template' is a pickled .*touch without data"):
        load_flame(tmp_path / "evil.pkl", LANDMARKS)
    assert not marker.exists()
    pickle.loads(payload)  # a plain unpickler would have run it: the check above is meaningful
    assert marker.exists()


def test_uv_mesh_gives_per_corner_uvs(tmp_path: Path) -> None:
    """The OBJ lists faces in another order, rotated and wound the other way, with a shuffled vt list."""
    rng = np.random.default_rng(9)
    vertex_uv = (MEAN_MM[:, :2] - MEAN_MM[:, :2].min(0)) / np.ptp(MEAN_MM[:, :2], axis=0)
    order = rng.permutation(len(vertex_uv))
    obj_faces = np.roll(FACES[rng.permutation(len(FACES))][:, ::-1], 1, axis=1)
    write_obj(
        tmp_path / "head_template.obj", MEAN_MM / 1000.0, obj_faces, vertex_uv[order], np.argsort(order)[obj_faces]
    )
    (tmp_path / "flame.pkl").write_bytes(pickle.dumps(flame_arrays()))
    model = load_flame(tmp_path / "flame.pkl", LANDMARKS, uv_mesh=tmp_path / "head_template.obj")
    np.testing.assert_array_equal(model.faces.numpy(), FACES)
    np.testing.assert_allclose(model.uvs[model.face_uvs].numpy(), vertex_uv[FACES], atol=1e-6)


def test_npz_round_trip(tmp_path: Path) -> None:
    write_bfm2017(tmp_path / "bfm.h5")
    model = load_bfm2017(tmp_path / "bfm.h5", LANDMARKS)
    np.savez(tmp_path / "bfm.npz", **model.arrays())
    for loaded in (MorphableModel.from_npz(tmp_path / "bfm.npz"), load_morphable_model(tmp_path / "bfm.npz")):
        assert loaded.state_dict().keys() == model.state_dict().keys()
        for name, buffer in model.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[name], buffer)
        assert loaded.expression_names == model.expression_names
    relabelled = load_morphable_model(tmp_path / "bfm.npz", landmark_indices=np.arange(68) % 5)
    np.testing.assert_array_equal(relabelled.landmark_indices.numpy(), np.arange(68) % 5)


def test_dispatch_by_extension_and_landmark_files(tmp_path: Path) -> None:
    write_bfm2009(tmp_path / "m.mat")
    write_bfm2017(tmp_path / "m.h5")
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(flame_arrays()))
    np.save(tmp_path / "lm.npy", LANDMARKS.reshape(68, 1))
    (tmp_path / "lm.txt").write_text("\n".join(f"{i}," for i in LANDMARKS))
    expected = {"m.mat": (4, 0), "m.h5": (5, 3), "m.pkl": (300, 100)}
    for name, sizes in expected.items():
        for landmarks in (tmp_path / "lm.npy", str(tmp_path / "lm.txt")):
            model = load_morphable_model(tmp_path / name, landmark_indices=landmarks)
            assert (model.num_shape, model.num_expression) == sizes
            np.testing.assert_array_equal(model.landmark_indices.numpy(), LANDMARKS)
    forced = load_morphable_model(tmp_path / "m.h5", format="bfm2017", landmark_indices=LANDMARKS, num_shape=1)
    assert forced.num_shape == 1
    with pytest.raises(ValueError, match="unknown model format 'obj'"):
        load_morphable_model(tmp_path / "m.h5", format="obj", landmark_indices=LANDMARKS)


def test_hydra_configs_instantiate(tmp_path: Path) -> None:
    write_bfm2009(tmp_path / "m.mat")
    write_bfm2017(tmp_path / "m.h5")
    (tmp_path / "m.pkl").write_bytes(chumpy_pickle(flame_arrays()))
    np.savez(tmp_path / "m.npz", **load_bfm2009(tmp_path / "m.mat", LANDMARKS).arrays())
    np.savetxt(tmp_path / "landmarks.txt", LANDMARKS, fmt="%d")
    files = {"bfm2009": "m.mat", "bfm2017": "m.h5", "flame": "m.pkl"}
    for name, file in files.items():
        config = OmegaConf.load(CONF / f"{name}.yaml")
        with pytest.raises(MissingMandatoryValue):  # the paths group's ??? (no local paths file)
            instantiate(with_paths(config))
        with pytest.raises(MissingMandatoryValue):  # the model file given, its landmarks not
            instantiate(with_paths(config, **{name: str(tmp_path / file)}))
        model = instantiate(with_paths(config, **{name: str(tmp_path / file)}), landmark_indices=LANDMARKS.tolist())
        assert isinstance(model, MorphableModel) and model.num_vertices == V
        paths = {name: str(tmp_path / file), f"{name}_landmarks": str(tmp_path / "landmarks.txt")}
        model = instantiate(with_paths(config, **paths))
        assert isinstance(model, MorphableModel) and model.num_vertices == V
    npz = OmegaConf.load(CONF / "npz.yaml")
    with pytest.raises(MissingMandatoryValue):
        instantiate(with_paths(npz))
    assert instantiate(with_paths(npz, facemodel_npz=str(tmp_path / "m.npz"))).num_shape == 4
    assert instantiate(OmegaConf.load(CONF / "ict.yaml")).num_vertices == 9409


def test_missing_landmarks_say_what_to_provide(tmp_path: Path) -> None:
    write_bfm2009(tmp_path / "m.mat")
    with pytest.raises(ValueError, match=r"m\.mat: this model does not include landmark.*68 0-based vertex indices"):
        load_morphable_model(tmp_path / "m.mat")
    with pytest.raises(ValueError, match="expected 68 landmark vertex indices, got shape \\[67\\]"):
        load_bfm2009(tmp_path / "m.mat", LANDMARKS[:67])
    with pytest.raises(ValueError, match=r"must lie in \[0, 25\).*1-based"):
        load_bfm2009(tmp_path / "m.mat", LANDMARKS + 1)
    with pytest.raises(ValueError, match="whole numbers"):
        load_bfm2009(tmp_path / "m.mat", LANDMARKS + 0.5)
    with pytest.raises(FileNotFoundError, match=r"landmark indices file .*nope\.txt does not exist"):
        load_bfm2009(tmp_path / "m.mat", tmp_path / "nope.txt")
    (tmp_path / "bad.txt").write_text("1 2 three")
    with pytest.raises(ValueError, match=r"bad\.txt: not a list of numbers"):
        load_bfm2009(tmp_path / "m.mat", tmp_path / "bad.txt")


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    for loader, name in ((load_bfm2009, "a.mat"), (load_bfm2017, "a.h5"), (load_flame, "a.pkl")):
        with pytest.raises(FileNotFoundError, match=f"{name} does not exist"):
            loader(tmp_path / name, LANDMARKS)
        (tmp_path / name).write_text("not a model")
        with pytest.raises(ModelFormatError, match=f"{name}: cannot read"):
            loader(tmp_path / name, LANDMARKS)
    with pytest.raises(ValueError, match=r"cannot tell the model format from the extension '\.obj'"):
        load_morphable_model(tmp_path / "model.obj", landmark_indices=LANDMARKS)
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ModelFormatError, match=r"list\.pkl: expected a FLAME model pickle"):
        load_flame(tmp_path / "list.pkl", LANDMARKS)


@pytest.mark.parametrize("key", ["shapeMU", "shapePC", "shapeEV", "tl"])
def test_bfm2009_missing_key(tmp_path: Path, key: str) -> None:
    write_bfm2009(tmp_path / "m.mat", drop=key)
    with pytest.raises(ModelFormatError, match=rf"m\.mat: missing '{key}'; expected a BFM 2009"):
        load_bfm2009(tmp_path / "m.mat", LANDMARKS)


@pytest.mark.parametrize("key", ["shape/model/mean", "shape/model/pcaBasis", "shape/model/pcaVariance", "shape/rep"])
def test_bfm2017_missing_key(tmp_path: Path, key: str) -> None:
    write_bfm2017(tmp_path / "m.h5", drop=key)
    with pytest.raises(ModelFormatError, match=rf"m\.h5: missing '{key}.*'; expected a BFM 2017/2019"):
        load_bfm2017(tmp_path / "m.h5", LANDMARKS)


@pytest.mark.parametrize("key", ["v_template", "shapedirs", "f"])
def test_flame_missing_key(tmp_path: Path, key: str) -> None:
    arrays = flame_arrays()
    del arrays[key]
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(arrays))
    with pytest.raises(ModelFormatError, match=rf"m\.pkl: missing '{key}'; expected a FLAME model pickle"):
        load_flame(tmp_path / "m.pkl", LANDMARKS)


def test_wrong_shapes(tmp_path: Path) -> None:
    write_bfm2009(tmp_path / "a.mat", shapePC=orthonormal(3 * V - 3, 4, seed=0).astype(np.float32))
    with pytest.raises(
        ModelFormatError, match=r"a\.mat: shape \(shapePC\) basis has shape \[72, 4\], expected \[75, 4\]"
    ):
        load_bfm2009(tmp_path / "a.mat", LANDMARKS)
    write_bfm2009(tmp_path / "b.mat", shapeEV=np.ones((3, 1), np.float32))
    with pytest.raises(
        ModelFormatError, match=r"b\.mat: shape \(shapePC\) basis has shape \[75, 4\], expected \[75, 3\]"
    ):
        load_bfm2009(tmp_path / "b.mat", LANDMARKS)
    write_bfm2009(tmp_path / "c.mat", tl=(FACES + 1)[:, :2].astype(np.float64))
    with pytest.raises(ModelFormatError, match=r"c\.mat: tl has shape \[32, 2\]"):
        load_bfm2009(tmp_path / "c.mat", LANDMARKS)
    write_bfm2009(tmp_path / "d.mat", tl=FACES.astype(np.float64))
    with pytest.raises(ModelFormatError, match="1-based"):
        load_bfm2009(tmp_path / "d.mat", LANDMARKS)
    write_bfm2017(tmp_path / "e.h5", **{"expression/model/pcaVariance": np.array([1.0, -1.0, 1.0], np.float32)})
    with pytest.raises(ModelFormatError, match=r"e\.h5: expression/model/pcaVariance must not be negative"):
        load_bfm2017(tmp_path / "e.h5", LANDMARKS)
    write_bfm2017(tmp_path / "e2.h5", **{"expression/model/mean": np.zeros(3 * V - 3, np.float32)})
    with pytest.raises(ModelFormatError, match=r"e2\.h5: expression/model/mean has shape \[72\], expected \[75\]"):
        load_bfm2017(tmp_path / "e2.h5", LANDMARKS)
    write_bfm2009(tmp_path / "f.mat")
    with pytest.raises(ValueError, match=r"asked for 9 shape \(shapePC\) components, the file has 4"):
        load_bfm2009(tmp_path / "f.mat", LANDMARKS, num_shape=9)
    write_bfm2017(tmp_path / "g.h5", **{"shape/representer/cells": np.zeros((4, 8), np.int32)})
    with pytest.raises(ModelFormatError, match=r"g\.h5: shape/representer/cells has shape \[4, 8\], expected \[3, F\]"):
        load_bfm2017(tmp_path / "g.h5", LANDMARKS)
    write_bfm2017(tmp_path / "h.h5", **{"shape/representer/cells": FACES.T.astype(np.int32) + V})
    with pytest.raises(ModelFormatError, match=r"h\.h5: triangle indices span \[25, 49\], expected \[0, 25\)"):
        load_bfm2017(tmp_path / "h.h5", LANDMARKS)
    (tmp_path / "i.pkl").write_bytes(pickle.dumps(flame_arrays(shapedirs=np.zeros((V, 3, 10)))))
    with pytest.raises(
        ModelFormatError, match=r"i\.pkl: shapedirs has shape \[25, 3, 10\], expected \[25, 3, 300\+Ke\]"
    ):
        load_flame(tmp_path / "i.pkl", LANDMARKS)
    (tmp_path / "j.pkl").write_bytes(pickle.dumps(flame_arrays()))
    with pytest.raises(ValueError, match=r"num_expression must lie in \[0, 100\], got 101"):
        load_flame(tmp_path / "j.pkl", LANDMARKS, num_expression=101)
    write_obj(tmp_path / "uv.obj", MEAN_MM[:-1], FACES[:-2], MEAN_MM[:-1, :2])
    with pytest.raises(ValueError, match=r"UV mesh .*uv\.obj: 24 vertices, the model has 25"):
        load_flame(tmp_path / "j.pkl", LANDMARKS, uv_mesh=tmp_path / "uv.obj")
