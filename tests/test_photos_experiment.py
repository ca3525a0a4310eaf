"""experiment=photos: training on real portraits (self-supervised) mixed with synthetic faces (supervised). Composed
and run for a few steps on a few of the shared real photos (pairs/A, public domain); skipped where they are absent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from fastganfit.data.mixing import MixedFaceDataModule
from fastganfit.data.prepare import prepare_images
from fastganfit.data.synthetic import generate_synthetic_faces
from fastganfit.training.stages import stage_configs

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FASTGANFIT_SHARED") or REPO.parent / "shared")
PHOTOS = SHARED / "data" / "portraits" / "pairs" / "A"
SIZE = 64
TINY = [
    f"renderer.image_size={SIZE}", f"heatmaps.crop_size={SIZE}", "heatmaps.heatmap_size=32", "texture.resolution=32",
    "identity.layers=[stage3]", "model.regressor.adapter_channels=8", "model.regressor.feature_dim=16",
    "model.regressor.hidden=16", "model.regressor.landmark_prior.samples=256", "model.log_images_every_n_steps=0",
]  # fmt: skip

needs_photos = pytest.mark.skipif(not PHOTOS.is_dir(), reason=f"the shared real photos are not at {PHOTOS}")


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A few real photos (pairs/A) and synthetic faces as face shards at test size."""
    root = tmp_path_factory.mktemp("photos_experiment")
    photos = sorted(PHOTOS.glob("*.jpg"))[:4]
    prepare_images(photos, root / "photos", crop_size=SIZE, workers=1, progress=False)
    # textured as the experiment's synthetic sets: by the default texture model (the regressor's texture head)
    settings = {"texture": "pca_portraits"}
    generate_synthetic_faces(root / "synthetic", n=4, seed=0, crop_size=SIZE, settings=settings, progress=False)
    return {"photos": root / "photos", "synthetic": root / "synthetic"}


def overrides(sets: dict[str, Path]) -> list[str]:
    return [
        "experiment=photos", f"data.supervised.train_urls={sets['synthetic']}",
        f"data.supervised.val_urls={sets['synthetic']}", "data.supervised.synthetic=null",
        f"data.self_supervised.train_urls={sets['photos']}", "data.batch_size=4", *TINY,
    ]  # fmt: skip


@needs_photos
def test_photos_experiment_mixes_real_photos_with_synthetic_faces(sets: dict[str, Path]) -> None:
    with initialize_config_dir(str(REPO / "fastganfit" / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides(sets), "run_dir=/tmp/photos_run"])
    data = instantiate(cfg.data)
    assert isinstance(data, MixedFaceDataModule)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["has_ground_truth"].tolist() == [True, True, False, False]  # 2 synthetic, 2 real photos
    stages = dict(stage_configs(cfg))
    assert list(stages) == ["align", "full"] and stages["full"].model.loss.identity > 0
    assert stages["align"].model.regressor.landmark_prior.noise == 0.01  # photos' landmarks are detected
    assert stages["align"].model.regressor.identity_prior is not None


@needs_photos
@pytest.mark.slow
def test_photos_experiment_trains_a_few_steps(sets: dict[str, Path], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    steps = ["stages.align.trainer.max_steps=2", "stages.full.trainer.max_steps=2",
             "+trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "model.scheduler.warmup_steps=0",
             "stages.align.model.scheduler.warmup_steps=0", "stages.full.model.scheduler.warmup_steps=0"]  # fmt: skip
    command = [sys.executable, str(REPO / "train.py"), *overrides(sets), *steps, f"hydra.run.dir={run_dir}"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    full = torch.load(run_dir / "full" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert full["global_step"] == 2
    assert any(key.startswith("regressor.identity_head") for key in full["state_dict"])
