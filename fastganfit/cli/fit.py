"""Reconstruction entry point (Hydra): ``python fit.py ckpt=PATH image=PATH [refine=true] [output=DIR]``.

``ckpt=PATH`` regresses each face with a trained FastGANFitModule (``refine=true`` adds GANFit++ refinement,
``conf/fit/refine.yaml``); ``ckpt=null`` runs plain GANFit from the mean face (``conf/fit/ganfit.yaml``).
``image`` is a file, a folder, a glob pattern or a list; ``multi_image=true`` (or ``folder``) makes the images
of one person share shape and texture. Results go to ``output`` (default: the Hydra run folder), one folder
per image, and ``index.html`` for several images. See docs/fitting.md.

Exit status: 0 when every image was reconstructed, 1 when any image failed (the others are still written),
2 on a bad checkpoint, option or model configuration.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fastganfit.cli import CONFIG_DIR
from fastganfit.fitting.pipeline import FitOptions, reconstruct_images
from fastganfit.reconstruction.graph import COMPONENTS, FaceReconstructionGraph
from fastganfit.regression.checkpoint import load_fast_ganfit
from fastganfit.regression.module import FastGANFitModule

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


def build(cfg: DictConfig) -> tuple[FaceReconstructionGraph, FastGANFitModule | None, object, FitOptions]:
    """The graph, the trained module (with ``ckpt``), the landmarker and the options a configuration asks for."""
    if cfg.multi_image not in SUBJECTS:
        raise ValueError(f"multi_image must be true, false or folder, got {cfg.multi_image!r}")
    device = resolve_device(str(cfg.device))
    if cfg.ckpt is not None:
        module = load_fast_ganfit(cfg.ckpt, device)
        graph = module.graph
        start, settings = "regressor", instantiate(cfg.refinement, _convert_="all") if cfg.refine else None
    else:
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
        faces=str(cfg.faces),
    )
    return graph, module, instantiate(cfg.landmarks), options


@hydra.main(config_path=str(CONFIG_DIR), config_name="fit", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "image"):
        print("fit.py: error: give image=PATH (a file, a folder or a glob pattern)", file=sys.stderr)
        sys.exit(2)
    try:
        graph, module, landmarker, options = build(cfg)
    except (FileNotFoundError, ValueError, InstantiationException) as error:
        print(f"fit.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    output = Path(cfg.output) if cfg.output is not None else Path(HydraConfig.get().runtime.output_dir)
    image = OmegaConf.to_container(cfg.image) if OmegaConf.is_list(cfg.image) else str(cfg.image)
    print(f"fit.py: {options.method} on {graph.device}; results in {output}", file=sys.stderr)
    report = reconstruct_images(image, output, graph, landmarker, options, regressor=module)
    failed = len(report.failed)
    index = f"; index: {report.index}" if report.index is not None else ""
    print(
        f"fit.py: reconstructed {len(report.written)} of {len(report.outcomes)} images in {report.seconds:.1f} s "
        f"into {output}{index}" + (f"; {failed} failed" if failed else "")
    )
    sys.exit(1 if failed or not report.written else 0)


if __name__ == "__main__":
    main()
