"""Checkpoints written before the package reorganisation still name their old modules; loading renames them."""

from __future__ import annotations

from hydra.utils import get_object

from fastganfit.regression.checkpoint import RENAMED_MODULES, renamed_targets

OLD_CONFIG = {
    "_target_": "fastganfit.model.build.build_fast_ganfit",
    "texture": {"_target_": "fastganfit.facemodel.procedural_texture.ProceduralTexture.for_ict", "resolution": 8},
    "renderer": {
        "camera": {"_target_": "fastganfit.facemodel.camera.PerspectiveCamera"},
        "lighting": {"_target_": "fastganfit.facemodel.lighting.PhongLighting"},
    },
    "loss": {"_target_": "fastganfit.model.losses.GANFitLoss", "weights": [1, 2]},
    "model": {"_target_": "fastganfit.facemodel.morphable.MorphableModel.ict"},
}


def test_old_targets_are_renamed_and_resolve() -> None:
    config = renamed_targets(OLD_CONFIG)
    assert config["_target_"] == "fastganfit.regression.build.build_fast_ganfit"
    assert config["texture"] == {"_target_": "fastganfit.texture.procedural.ProceduralTexture.for_ict", "resolution": 8}
    assert config["renderer"]["camera"]["_target_"] == "fastganfit.render.camera.PerspectiveCamera"
    assert config["loss"]["weights"] == [1, 2]
    assert config["model"] == OLD_CONFIG["model"]  # not renamed: still where it was
    targets = [config["_target_"], config["texture"]["_target_"], config["loss"]["_target_"],
               config["renderer"]["camera"]["_target_"], config["renderer"]["lighting"]["_target_"]]  # fmt: skip
    assert all(callable(get_object(target)) for target in targets)


def test_every_renamed_module_exists() -> None:
    import importlib

    for new in RENAMED_MODULES.values():
        importlib.import_module(new)
