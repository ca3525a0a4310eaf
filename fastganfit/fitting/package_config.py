"""fit.py's configuration as the package ships it (``fastganfit/conf/fit.yaml``): the defaults of
:class:`~fastganfit.fitting.reconstructor.FaceReconstructor` (refinement and GANFit settings, landmarker, components)
come from the same files as the command line's, so the two cannot drift.

The files compose with Hydra's defaults lists, so Hydra's compose API reads them; it is imported here only when a
default is asked for, and never when the caller gives the objects (as the command-line entry points do).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fastganfit.regression.component_values import COMPONENT_PATHS

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


def local_paths_files() -> list[Path]:
    """Where a user's asset paths (``paths`` group, conf/paths/default.yaml) are read from, first found wins: the
    clone's git-ignored ``fastganfit/conf/local/paths.yaml``, then ``$FASTGANFIT_CONFIG_DIR/local/paths.yaml``
    (default ``~/.config/fastganfit/local/paths.yaml``, for an installed package; the entry configs'
    ``hydra.searchpath``)."""
    user = os.environ.get("FASTGANFIT_CONFIG_DIR") or str(Path(os.environ.get("HOME", "/")) / ".config" / "fastganfit")
    return [PACKAGE_CONF / "local" / "paths.yaml", Path(user) / "local" / "paths.yaml"]


#: A component value that refers to the ``paths`` group: ``${paths.bfm2009}``.
PATHS_REFERENCE = re.compile(r"^\$\{paths\.(\w+)\}$")


#: How a command line gives a file instead (:func:`require_component_values`).
ON_THE_COMMAND_LINE = "on the command line (paths.bfm2009=FILE)"


def require_component_values(cfg: DictConfig, elsewhere: str = ON_THE_COMMAND_LINE) -> None:
    """``ValueError`` naming the component values ``cfg`` leaves out, as the user gives them: a licensed asset's
    ``paths.<key>`` not set (``facemodel=bfm2009`` reads ``${paths.bfm2009}``), with the local paths file to name it
    in (or ``elsewhere``: how the caller gives the file instead), or a value left ``???`` (``facemodel.path=...``)."""
    unset: list[str] = []
    missing: list[str] = []
    for group in COMPONENT_PATHS:
        if group not in cfg or not isinstance(cfg[group], DictConfig):
            continue
        for key in cfg[group]:
            if OmegaConf.is_missing(cfg[group], key):
                missing.append(f"{group}.{key}=...")
                continue
            reference = PATHS_REFERENCE.match(str(cfg[group]._get_node(key)._value()))
            if reference and OmegaConf.is_missing(cfg.paths, reference.group(1)):
                unset.append(f"paths.{reference.group(1)} ({group}.{key})")
    if unset:
        first, user = local_paths_files()
        raise ValueError(
            f"{', '.join(unset)} not set: the chosen component needs the file. Name it in {first} (a clone) or {user} "
            f"(an installed package; $FASTGANFIT_CONFIG_DIR), e.g. `bfm2009: /data/01_MorphableModel.mat`, or "
            f"{elsewhere}; docs/assets.md lists the keys"
        )
    if missing:
        raise ValueError(
            f"{', '.join(missing)} missing: the chosen component needs it (the '# Asset:' line "
            "of its conf/<group>/<option>.yaml and docs/assets.md say which file)"
        )
