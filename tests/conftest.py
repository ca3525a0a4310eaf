"""Shared fixtures: the embedded ICT model and a small renderer (CPU-sized images keep tests fast)."""

from __future__ import annotations

import os

import pytest
import torch

from fastganfit.facemodel.morphable import MorphableModel

# Every model built from the default config fits the identity prior on rendered faces (2000 by default, about a
# minute): a few dozen keep the builds of the tests (and of the train.py runs they start) fast.
os.environ.setdefault("FASTGANFIT_IDENTITY_PRIOR_SAMPLES", "32")


@pytest.fixture(scope="session")
def ict_model() -> MorphableModel:
    """The embedded ICT-FaceKit morphable model."""
    return MorphableModel.ict()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` when CUDA is not available."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run bench/gpu.sh on a GPU machine)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_user_paths(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests compose without the user's own asset paths (~/.config/fastganfit/local/paths.yaml, docs/assets.md):
    ``FASTGANFIT_CONFIG_DIR`` names an empty folder; a test naming files sets it to its own."""
    monkeypatch.setenv("FASTGANFIT_CONFIG_DIR", str(tmp_path_factory.getbasetemp() / "no_user_config"))


@pytest.fixture(autouse=True)
def _no_stale_wandb_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without the W&B service token an earlier in-process run left in ``WANDB_SERVICE``: a test
    that tore its service down would otherwise send the next one to a socket that no longer exists."""
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
