"""Shared fixtures: the embedded ICT model and a small renderer (CPU-sized images keep tests fast)."""

from __future__ import annotations

import pytest
import torch

from fastganfit.facemodel.morphable import MorphableModel


@pytest.fixture(scope="session")
def ict_model() -> MorphableModel:
    """The embedded ICT-FaceKit morphable model."""
    return MorphableModel.ict()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
