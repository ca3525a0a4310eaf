"""fastganfit.FaceReconstructor (the Python front door) with a tiny checkpoint (64 px crops, torch renderer): the
acceptance command, results equal to fit.py's files, inputs as paths, PIL images and arrays, bad inputs named,
component values applied or rejected as fit.py does, GANFit from the components."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image
from skimage import data
from tiny_checkpoint import TINY_MODEL_OVERRIDES, save_checkpoint, tiny_model_config

import fastganfit
from fastganfit.cli.reconstructor import build_reconstructor
from fastganfit.fitting.package_config import instantiate_packaged
from fastganfit.fitting.pipeline import FitOptions
from fastganfit.fitting.reconstructor import FaceReconstruction, FaceReconstructor
from fastganfit.regression.checkpoint import build_fast_ganfit_module

REPO = Path(__file__).resolve().parent.parent
#: Files whose bytes fit.py and FaceReconstruction.save write alike (all of them).
RESULT_FILES = ("mesh.obj", "mesh.mtl", "texture.png", "mesh.glb", "overlay.png", "report.png", "fit.json",
                "texture_model.png", "texture_mask.png")  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny fast_full checkpoint whose components render with the torch backend."""
    config = tiny_model_config("fast_full")
    config["renderer"]["backend"] = "torch"
    module = build_fast_ganfit_module(config)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt", config, module.regressor.state_dict())


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The astronaut photo (512 px)."""
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture(scope="module")
def reconstructor(checkpoint: Path) -> FaceReconstructor:
    return FaceReconstructor.from_checkpoint(checkpoint, device="cpu", options=FitOptions(progress=False))


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)


@pytest.mark.slow
def test_the_two_line_use_works_and_import_stays_light(checkpoint, photo) -> None:
    light = python("import sys, fastganfit; print(sorted({'torch', 'hydra', 'lightning'} & set(sys.modules)))")
    assert light.returncode == 0 and light.stdout.strip() == "[]", light.stderr[-2000:]
    command = f"import fastganfit; r = fastganfit.FaceReconstructor.from_checkpoint({str(checkpoint)!r}); " \
              f"print(r.reconstruct({str(photo)!r})[0])"  # fmt: skip
    result = python(command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"FaceReconstruction(source='{photo}', face 0 of 1, ")
    assert "vertices (mm)" in result.stdout and "method='regression'" in result.stdout
    assert fastganfit.FaceReconstructor is FaceReconstructor


@pytest.mark.slow
def test_saved_results_equal_fit_py_files(reconstructor, checkpoint, photo, tmp_path) -> None:
    command = [sys.executable, str(REPO / "fit.py"), f"ckpt={checkpoint}", f"image={photo}", "device=cpu",
               f"output={tmp_path / 'fit'}", "progress=false", f"hydra.run.dir={tmp_path / 'hydra'}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (face,) = reconstructor.reconstruct(photo)
    saved = face.save(tmp_path / "saved" / face.key)
    written = tmp_path / "fit" / "astronaut"
    assert face.key == "astronaut"
    assert sorted(path.name for path in saved.iterdir()) == sorted(path.name for path in written.iterdir())
    for name in RESULT_FILES:
        assert (saved / name).read_bytes() == (written / name).read_bytes(), name
    with np.load(saved / "params.npz") as ours, np.load(written / "params.npz") as theirs:
        assert sorted(ours.files) == sorted(theirs.files)
        for key in ours.files:
            np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    assert json.loads((saved / "fit.json").read_text())["method"] == "regression"


def test_results_hold_the_mesh_textures_params_and_crop_geometry(reconstructor, photo) -> None:
    (face,) = reconstructor.reconstruct(photo, faces="largest")
    model = reconstructor.graph.model
    assert face.vertices.shape == tuple(model.mean.shape) and face.faces.shape == tuple(model.faces.shape)
    assert 50 < np.ptp(face.vertices[:, 0]) < 250  # a face's width, in mm
    assert face.texture.dtype == np.uint8 and face.texture.shape == face.model_texture.shape == (32, 32, 3)
    assert set(face.params) == {"shape", "expression", "texture", "camera", "light"}
    assert face.crop_landmarks.shape == face.photo_landmarks.shape == (68, 2) and face.crop_size == 64
    projected = face.photo_landmarks @ face.crop_transform[:, :2].T + face.crop_transform[:, 2]
    assert np.abs(projected - face.crop_landmarks).mean() < 3.0  # the transform takes the photo into the crop
    x0, y0, x1, y1 = face.box
    assert x0 < face.photo_landmarks[:, 0].mean() < x1 and y0 < face.photo_landmarks[:, 1].mean() < y1
    assert face.photo_scale == 1.0 and face.notes == [] and face.overlay.shape == (512, 512, 3)


def test_paths_pil_images_and_arrays_give_the_same_face(reconstructor, photo) -> None:
    pixels = np.asarray(Image.open(photo).convert("RGB"))
    rgba = Image.fromarray(np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)]))
    faces = reconstructor.reconstruct([photo, Image.open(photo), pixels, rgba])
    assert [face.source for face in faces] == [str(photo), "images[1]", "images[2]", "images[3]"]
    assert [face.key for face in faces] == ["astronaut", "image1", "image2", "image3"]
    for face in faces[1:]:
        np.testing.assert_allclose(face.vertices, faces[0].vertices, atol=1e-4)
        np.testing.assert_array_equal(face.texture, faces[0].texture)
    assert faces[3].notes == ["RGBA image converted to RGB (transparency over black)"]


def test_bad_inputs_are_named(reconstructor, photo, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"images\[1\]: input .*missing\.jpg does not exist"):
        reconstructor.reconstruct([photo, tmp_path / "missing.jpg"])
    with pytest.raises(ValueError, match=r"^image: an image array must be uint8 RGB .*, got float32 \[8, 8, 3\]"):
        reconstructor.reconstruct(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"images\[0\]: .* got uint8 \[8, 8\]"):
        reconstructor.reconstruct([np.zeros((8, 8), np.uint8)])
    with pytest.raises(TypeError, match=r"images\[1\]: expected a path, a PIL image or a uint8 RGB .*, got int"):
        reconstructor.reconstruct([photo, 3])
    blank = np.full((128, 128, 3), 128, np.uint8)
    with pytest.raises(ValueError, match=r"^image: no face found"):
        reconstructor.reconstruct(blank)
    assert [face.source for face in reconstructor.reconstruct([blank, photo], on_error="skip")] == [str(photo)]


def test_component_values_apply_and_other_options_are_rejected_as_in_fit_py(checkpoint) -> None:
    built = FaceReconstructor.from_checkpoint(checkpoint, device="cpu", renderer={"visibility_tolerance_mm": 3.0},
                                              **{"lighting.shininess": 7.0})  # fmt: skip
    assert built.graph.renderer.visibility_tolerance_mm == 3.0
    assert built.graph.renderer.lighting.shininess == 7.0
    trained_option = {"identity": "dlib_resnet", "identity.layers": ["stage2", "stage3"]}  # as fit.py takes it
    assert FaceReconstructor.from_checkpoint(checkpoint, device="cpu", **trained_option).regressor is not None
    with pytest.raises(ValueError, match=r"identity=dlib_resnet: .* its identity has layers=\['stage2', 'stage3'\]"):
        FaceReconstructor.from_checkpoint(checkpoint, identity="dlib_resnet")
    with pytest.raises(ValueError, match=rf"identity=arcface_iresnet50: ckpt={checkpoint} rebuilds .* its identity has "
                                         "_target_='fastganfit.perception.identity.dlib_identity'"):
        FaceReconstructor.from_checkpoint(checkpoint, identity="arcface_iresnet50")
    with pytest.raises(ValueError, match=r"its identity has layers=\['stage2', 'stage3'\], the option \['stage2'\]"):
        FaceReconstructor.from_checkpoint(
            checkpoint, identity={"_target_": "fastganfit.perception.identity.dlib_identity", "layers": ["stage2"]}
        )
    with pytest.raises(ValueError, match=r"regressor: not a component; components are"):
        FaceReconstructor.from_checkpoint(checkpoint, regressor={"hidden": 8})


def test_the_checkpoint_file_is_read_once(checkpoint, monkeypatch) -> None:
    """By the front door and by fit.py's build (which used to read it three times)."""
    reads: list[Path] = []
    load = torch.load

    def counted(file, *args, **kwargs):
        reads.append(Path(file))
        return load(file, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counted)
    FaceReconstructor.from_checkpoint(checkpoint, device="cpu", renderer={"backend": "torch"})
    assert reads.count(checkpoint) == 1
    overrides = [f"ckpt={checkpoint}", "image=x.png", "device=cpu", "renderer.visibility_tolerance_mm=4"]
    with initialize_config_dir(str(REPO / "fastganfit" / "conf"), version_base="1.3"):
        cfg = compose("fit", overrides=overrides)
    built = build_reconstructor(cfg, overrides, detect=False)
    assert reads.count(checkpoint) == 2 and built.graph.renderer.visibility_tolerance_mm == 4.0


def test_ganfit_from_the_components(photo) -> None:
    tiny = {key: value for key, value in (o.split("=", 1) for o in TINY_MODEL_OVERRIDES) if "regressor" not in key}
    values = {key: int(value) if value.isdigit() else value for key, value in tiny.items()}
    values["identity.layers"] = ["stage2", "stage3"]
    ganfit = instantiate_packaged("ganfit").with_steps({"align": 2, "full": 1})
    options = FitOptions(progress=False)
    built = FaceReconstructor.from_components(device="cpu", ganfit=ganfit, options=options, texture="procedural",
                                              renderer={"backend": "torch"}, **values)  # fmt: skip
    (face,) = built.reconstruct(photo)
    assert built.regressor is None and face.info["method"] == "GANFit optimisation from the mean face"
    assert face.info["batch_objective"]["align"]["steps"] == 2 and isinstance(face, FaceReconstruction)
    clone = re.escape(str(REPO / "fastganfit" / "conf" / "local" / "paths.yaml"))
    local = rf"Name it in {clone} \(a clone\) or .*/no_user_config/local/paths\.yaml"
    with pytest.raises(ValueError, match=r"^paths\.bfm2009 \(facemodel\.path\), paths\.bfm2009_landmarks "
                                         rf"\(facemodel\.landmark_indices\) not set: .*{local}"):
        FaceReconstructor.from_components(facemodel="bfm2009")
