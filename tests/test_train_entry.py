"""train.py end to end: the texture-GAN experiments on UV shards and on procedural textures, resume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastganfit.data.uv_shards import write_uv_shards
from fastganfit.texture.procedural import ProceduralTexture

REPO = Path(__file__).resolve().parent.parent
TINY_GAN = [
    "model.generator.resolution=16", "model.generator.z_dim=16", "model.generator.w_dim=16",
    "model.generator.base_channels=16", "model.generator.max_channels=32", "model.discriminator.base_channels=16",
    "model.discriminator.max_channels=32", "data.batch_size=4", "data.num_workers=0",
    "+trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1",
]


def run_train(*overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "train.py"), *overrides]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)


@pytest.mark.slow
def test_texture_gan_trains_on_uv_shards_and_resumes(tmp_path: Path) -> None:
    procedural = ProceduralTexture.for_ict(16)
    textures = procedural.sample(12, torch.Generator().manual_seed(0))
    write_uv_shards(((f"uv{i:03d}", texture, None) for i, texture in enumerate(textures)), tmp_path / "uv",
                    max_per_shard=6)
    run_dir = tmp_path / "run"
    result = run_train("experiment=texture_gan", f"data.urls={tmp_path / 'uv'}", "trainer.max_steps=4",
                       f"hydra.run.dir={run_dir}", *TINY_GAN)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"] == 4
    assert list((run_dir / "logs").rglob("metrics.csv")), "the CSV logger wrote metrics"

    resumed = run_train("experiment=texture_gan", f"data.urls={tmp_path / 'uv'}", "trainer.max_steps=8",
                        f"ckpt_path={checkpoint}", f"hydra.run.dir={tmp_path / 'resumed'}", *TINY_GAN)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 8, "resuming continues from the saved step"


@pytest.mark.slow
def test_procedural_experiment_runs(tmp_path: Path) -> None:
    result = run_train("experiment=texture_gan_procedural", "trainer.max_steps=2", f"hydra.run.dir={tmp_path}",
                       *TINY_GAN)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


@pytest.mark.slow
def test_train_without_experiment_or_with_bad_data_fails_clearly(tmp_path: Path) -> None:
    result = run_train(f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and "choose an experiment" in result.stderr
    missing = run_train("experiment=texture_gan", f"hydra.run.dir={tmp_path}")
    assert missing.returncode != 0 and "data.urls" in missing.stderr
