"""The :class:`~fastganfit.FaceReconstructor` a reconstruction command's configuration asks for (``fit.py``, the
photos -> UV-shards command): ``ckpt=PATH`` (its components, with the command line's component values applied or
options rejected as :mod:`fastganfit.cli.components` says) or ``ckpt=null`` (GANFit with the composed components),
its landmarker, refinement and GANFit settings and the :class:`~fastganfit.fitting.pipeline.FitOptions` fields the
configuration has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fastganfit.cli.components import checkpoint_request
from fastganfit.fitting.package_config import require_component_values
from fastganfit.fitting.pipeline import FitOptions
from fastganfit.fitting.reconstructor import FaceReconstructor, resolve_device
from fastganfit.regression.checkpoint import build_graph

#: FitOptions fields a reconstructor sets per call, not the configuration.
PER_CALL = ("start", "settings")


def fit_options(cfg: DictConfig, **given: Any) -> FitOptions:
    """:class:`FitOptions` from the configuration's keys of the same names (``batch_size``, ``min_face``, ...; keys
    it lacks keep their defaults) and ``given`` (e.g. ``subjects``)."""
    names = [field.name for field in fields(FitOptions) if field.name not in PER_CALL and field.name not in given]
    return FitOptions(**{name: cfg[name] for name in names if name in cfg}, **given)


def build_reconstructor(
    cfg: DictConfig, overrides: Sequence[str] = (), detect: bool = True, **options: Any
) -> FaceReconstructor:
    """The reconstructor of ``cfg`` (``ckpt``, ``device``, ``landmarks``, ``refinement``, ``ganfit``, the components
    and the FitOptions keys; ``options`` override those); ``overrides``: the command line's, whose component values
    apply on top of the checkpoint's components. ``detect=False``: no landmarker (aligned crops only)."""
    settings = fit_options(cfg, **options)
    detector = instantiate(cfg.landmarks) if detect else None
    if cfg.ckpt is not None:
        values, component_options = checkpoint_request(cfg, overrides)
        return FaceReconstructor.load_checkpoint(
            str(cfg.ckpt), values, component_options, device=str(cfg.device), landmarker=detector,
            refinement=instantiate(cfg.refinement, _convert_="all"), options=settings,
        )  # fmt: skip
    require_component_values(cfg)
    graph = build_graph(OmegaConf.to_container(cfg.model, resolve=True), resolve_device(str(cfg.device)))
    return FaceReconstructor(graph, None, detector, ganfit=instantiate(cfg.ganfit, _convert_="all"), options=settings)
