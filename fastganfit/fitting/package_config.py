"""fit.py's configuration as the package ships it (``fastganfit/conf/fit.yaml``): the defaults of
:class:`~fastganfit.fitting.reconstructor.FaceReconstructor` (refinement and GANFit settings, landmarker, components)
come from the same files as the command line's, so the two cannot drift.

The files compose with Hydra's defaults lists, so Hydra's compose API reads them; it is imported here only when a
default is asked for, and never when the caller gives the objects (as the command-line entry points do).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

#: The package's config folder (``fastganfit/conf``).
PACKAGE_CONF = Path(__file__).resolve().parent.parent / "conf"


def packaged_fit_config(overrides: Sequence[str] = ()) -> DictConfig:
    """``fit.yaml`` composed with ``overrides`` (Hydra override syntax, e.g. ``identity=arcface_iresnet50``)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(PACKAGE_CONF), version_base="1.3"):
        return compose("fit", overrides=list(overrides))


def instantiate_packaged(key: str) -> Any:
    """fit.yaml's ``key`` (``landmarks``, ``refinement``, ``ganfit``) built."""
    from hydra.utils import instantiate

    return instantiate(packaged_fit_config()[key], _convert_="all")
