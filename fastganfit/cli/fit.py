"""Reconstruction entry point (Hydra): ``python fit.py ckpt=PATH image=PATH [refine=true] [output=DIR]``.

``ckpt=PATH`` regresses each face with a trained FastGANFitModule (``refine=true`` adds GANFit++ refinement,
``conf/fit/refine.yaml``); ``ckpt=null`` runs plain GANFit from the mean face (``conf/fit/ganfit.yaml``).
``image`` is a file, a folder, a glob pattern or a list; ``multi_image=true`` (or ``folder``) makes the images
of one person share shape and texture. Results go to ``output`` (default: the Hydra run folder), one folder
per image, and ``index.html`` for several images; ``logger=wandb`` also logs them to a W&B run (a table of
inputs, renders, overlays, textures, meshes and objective values; docs/tracking.md). See docs/fitting.md.

Components (``facemodel=``, ``identity=``, ``heatmaps=``, ``texture=``, ``lighting=``, ``renderer.``) build the
model with ``ckpt=null``; with a ckpt they follow :mod:`fastganfit.cli.components` (a value applies on top of the
checkpoint's component; an option other than the trained one is an error).

Exit status: 0 when every image was reconstructed, 1 when any image failed (the others are still written),
2 on a bad checkpoint, option or model configuration.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from fastganfit.cli import CONFIG_DIR
from fastganfit.cli.components import checkpoint_values, require_component_values
from fastganfit.cli.exit_status import exit_status
from fastganfit.fitting.pipeline import FitOptions, reconstruct_images
from fastganfit.reconstruction.graph import COMPONENTS, FaceReconstructionGraph
from fastganfit.regression.checkpoint import load_fast_ganfit, read_model_config
from fastganfit.regression.module import FastGANFitModule
from fastganfit.training.loggers import close_loggers
from fastganfit.training.tracking import log_fit, open_run

SUBJECTS = {False: "none", True: "all", "folder": "folder"}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else as torch reads it (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name}: CUDA is not available on this machine")
    return device


def build_graph(cfg: DictConfig, device: torch.device) -> FaceReconstructionGraph:
    """The frozen graph of ``cfg.model``'s components alone (no regressor), on ``device``."""
    components = {name: OmegaConf.to_container(cfg.model[name], resolve=True) for name in COMPONENTS}
    graph = instantiate({"_target_": f"{FaceReconstructionGraph.__module__}.FaceReconstructionGraph.from_components",
                         **components}, _convert_="all")  # fmt: skip
    return graph.to(device)


def build(
    cfg: DictConfig, overrides: Sequence[str] = ()
) -> tuple[FaceReconstructionGraph, FastGANFitModule | None, object, FitOptions]:
    """The graph, the trained module (with ``ckpt``), the landmarker and the options a configuration asks for.
    ``overrides``: the command line's (component values among them apply on top of the checkpoint's config)."""
    if cfg.multi_image not in SUBJECTS:
        raise ValueError(f"multi_image must be true, false or folder, got {cfg.multi_image!r}")
    device = resolve_device(str(cfg.device))
    if cfg.ckpt is not None:
        values = checkpoint_values(cfg, overrides, read_model_config(cfg.ckpt), str(cfg.ckpt))
        module = load_fast_ganfit(cfg.ckpt, device, values)
        graph = module.graph
        start, settings = "regressor", instantiate(cfg.refinement, _convert_="all") if cfg.refine else None
    else:
        require_component_values(cfg)
        module, graph = None, build_graph(cfg, device)
        start, settings = "mean_face", instantiate(cfg.ganfit, _convert_="all")
    options = FitOptions(
        start=start,
        settings=settings,
        subjects=SUBJECTS[cfg.multi_image],
        batch_size=int(cfg.batch_size),
        min_face=float(cfg.min_face),
        max_side=int(cfg.max_side),
        progress=bool(cfg.progress),
        texture_source=str(cfg.texture_source),
        photo_light=str(cfg.photo_light),
        faces=str(cfg.faces),
    )
    return graph, module, instantiate(cfg.landmarks), options


@exit_status
@hydra.main(config_path=str(CONFIG_DIR), config_name="fit", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "image"):
        print("fit.py: error: give image=PATH (a file, a folder or a glob pattern)", file=sys.stderr)
        sys.exit(2)
    try:
        graph, module, landmarker, options = build(cfg, HydraConfig.get().overrides.task)
        tracker = open_run(cfg, "fit", cfg.ckpt)
    except (FileNotFoundError, ValueError, InstantiationException, MissingMandatoryValue) as error:
        print(f"fit.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    output = Path(cfg.output) if cfg.output is not None else Path(HydraConfig.get().runtime.output_dir)
    image = OmegaConf.to_container(cfg.image) if OmegaConf.is_list(cfg.image) else str(cfg.image)
    print(f"fit.py: {options.method} on {graph.device}; results in {output}", file=sys.stderr)
    report = reconstruct_images(image, output, graph, landmarker, options, regressor=module)
    print(f"fit.py: {report.summary(output)}")
    if tracker is not None:
        log_fit(tracker, [(str(outcome.source), outcome.folder) for outcome in report.written], len(report.failed))
        close_loggers([tracker])
    sys.exit(report.exit_status)


if __name__ == "__main__":
    main()
