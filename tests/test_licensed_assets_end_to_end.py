"""The licensed-asset path end to end, with tiny files in the real formats standing in for the licensed ones:
``train.py experiment=fast_align`` with non-default components for two steps, then ``fit.py`` with that checkpoint
on the astronaut, which rebuilds the same components from the checkpoint and writes every output."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from asset_files import AssetFiles

from fastganfit.data.synthetic import generate_synthetic_faces
from fastganfit.regression.checkpoint import read_model_config

REPO = Path(__file__).resolve().parent.parent
OUTPUTS = ("mesh.obj", "mesh.mtl", "texture.png", "params.npz", "overlay.png", "report.png")


def bfm_arcface_fan(assets: AssetFiles) -> list[str]:
    return [
        "facemodel=bfm2009", f"facemodel.path={assets['bfm2009']}", f"facemodel.landmark_indices={assets['landmarks']}",
        f"facemodel.uv_mesh={assets['uv_mesh']}", "identity=arcface_iresnet50",
        f"identity.weights={assets['arcface_iresnet50']}", "identity.layers=[layer2,layer4]", "heatmaps=fan",
        f"heatmaps.weights={assets['fan']}", "heatmaps.flip=false", "texture.resolution=32",
    ]  # fmt: skip


def flame_sh_pca(assets: AssetFiles) -> list[str]:
    return [
        "facemodel=flame", f"facemodel.path={assets['flame']}", f"facemodel.landmark_indices={assets['landmarks']}",
        f"facemodel.uv_mesh={assets['uv_mesh']}", "facemodel.num_shape=20", "facemodel.num_expression=10",
        "lighting=sh", "texture=pca", f"texture.path={assets['pca']}", "identity.layers=[stage3]",
    ]  # fmt: skip


#: name -> (component overrides, expected stored targets, expected params.npz sizes)
CASES: dict[str, tuple[Callable[[AssetFiles], list[str]], dict[str, str], dict[str, int]]] = {
    "bfm2009-arcface50-fan": (
        bfm_arcface_fan,
        {"model": "load_bfm2009", "identity": "arcface_identity", "heatmaps": "FANHeatmaps"},
        {"shape": 4, "expression": 0, "light": 10},
    ),
    "flame-sh-pca": (
        flame_sh_pca,
        {"model": "load_flame", "texture": "PCATexture.from_npz", "lighting": "SphericalHarmonicsLighting"},
        {"shape": 20, "expression": 10, "light": 27, "texture": 100},
    ),
}


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, cwd=REPO, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_train_then_fit_with_licensed_components(case: str, tmp_path: Path) -> None:
    components, targets, sizes = CASES[case]
    assets = AssetFiles(tmp_path / "assets")
    (tmp_path / "assets").mkdir()
    overrides = components(assets)
    shards = tmp_path / "shards"
    generate_synthetic_faces(shards, n=4, seed=0, crop_size=64, progress=False)
    train = run([
        "train.py", "experiment=fast_align", f"data.train_urls={shards}", "data.val_urls=null", "data.synthetic=null",
        "data.batch_size=2", "data.num_workers=0", "data.shuffle_buffer=0", "data.augment=false",
        "renderer.image_size=64", "heatmaps.crop_size=64", "heatmaps.heatmap_size=32",
        "model.regressor.adapter_channels=8", "model.regressor.feature_dim=16", "model.regressor.hidden=16",
        "model.log_images_every_n_steps=0", "model.scheduler.warmup_steps=0", "+trainer.enable_progress_bar=false",
        "trainer.max_steps=2", *overrides, f"hydra.run.dir={tmp_path / 'run'}",
    ])  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    stored = read_model_config(ckpt)
    where = {"model": stored["model"], "identity": stored["identity"], "heatmaps": stored["heatmaps"],
             "texture": stored["texture"], "lighting": stored["renderer"]["lighting"]}  # fmt: skip
    for component, target in targets.items():
        assert where[component]["_target_"].endswith(target), (component, where[component])

    image = assets["image"]
    fit = [
        "fit.py", f"ckpt={ckpt}", f"image={image}", "refine=true", "refinement.stages.align.steps=1",
        "refinement.stages.full.steps=1", "refinement.stages.colour.steps=1", f"output={tmp_path / 'out'}",
        "progress=false", f"hydra.run.dir={tmp_path / 'fit'}",
    ]  # fmt: skip
    swapped = run([*fit, "identity=dlib_resnet" if "arcface" in case else "lighting=phong"])
    assert swapped.returncode == 2 and "rebuilds the components it was trained with" in swapped.stderr
    if "arcface" in case:  # the licensed file moved since training: a value override points at it
        moved = assets["arcface_iresnet50"].rename(tmp_path / "moved_backbone.pth")
        fit += ["identity=arcface_iresnet50", f"identity.weights={moved}"]
    result = run(fit)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "out" / image.stem
    for name in OUTPUTS:
        assert (folder / name).stat().st_size > 0, name
    with np.load(folder / "params.npz") as params:
        for group, size in sizes.items():
            assert params[group].shape == (size,), group
            assert np.isfinite(params[group]).all(), group


@pytest.mark.slow
def test_a_missing_asset_stops_train_and_fit_before_any_work(tmp_path: Path) -> None:
    missing = tmp_path / "PublicMM1" / "01_MorphableModel.mat"
    shards = tmp_path / "shards"
    face = ["facemodel=bfm2009", f"facemodel.path={missing}", "facemodel.landmark_indices=[0]"]
    train = run(["train.py", "experiment=fast_align", f"data.train_urls={shards}", *face,
                 f"hydra.run.dir={tmp_path / 'run'}"])  # fmt: skip
    assert train.returncode == 2 and not shards.exists(), train.stderr[-2000:]
    error = f"train.py: error: the model could not be built: BFM 2009 model file {missing} does not exist"
    assert error in train.stderr
    assert "expected a BFM 2009 01_MorphableModel.mat" in train.stderr
    fit = run(["fit.py", "image=missing.png", "identity=arcface_iresnet100", f"identity.weights={missing}",
               f"output={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'fit'}"])  # fmt: skip
    assert fit.returncode == 2 and f"weights file not found: {missing}" in fit.stderr
    assert not (tmp_path / "out").exists()
    unset = run(["train.py", "experiment=fast_align", "facemodel=flame", f"hydra.run.dir={tmp_path / 'run'}"])
    assert unset.returncode == 2, unset.stderr[-2000:]
    unset_keys = "error: paths.flame (facemodel.path), paths.flame_landmarks (facemodel.landmark_indices) not set"
    assert unset_keys in unset.stderr and "no_user_config/local/paths.yaml" in unset.stderr, unset.stderr[-2000:]
