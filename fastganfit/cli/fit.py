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
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from fastganfit.cli import CONFIG_DIR
from fastganfit.cli.exit_status import exit_status
from fastganfit.cli.reconstructor import build_reconstructor
from fastganfit.training.loggers import close_loggers
from fastganfit.training.tracking import log_fit, open_run

SUBJECTS = {False: "none", True: "all", "folder": "folder"}


@exit_status
@hydra.main(config_path=str(CONFIG_DIR), config_name="fit", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "image"):
        print("fit.py: error: give image=PATH (a file, a folder or a glob pattern)", file=sys.stderr)
        sys.exit(2)
    try:
        if cfg.multi_image not in SUBJECTS:
            raise ValueError(f"multi_image must be true, false or folder, got {cfg.multi_image!r}")
        reconstructor = build_reconstructor(cfg, HydraConfig.get().overrides.task, subjects=SUBJECTS[cfg.multi_image])
        method = reconstructor.fit_options(cfg.refine).method
        tracker = open_run(cfg, "fit", cfg.ckpt)
    except (FileNotFoundError, ValueError, InstantiationException, MissingMandatoryValue) as error:
        print(f"fit.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    output = Path(cfg.output) if cfg.output is not None else Path(HydraConfig.get().runtime.output_dir)
    image = OmegaConf.to_container(cfg.image) if OmegaConf.is_list(cfg.image) else str(cfg.image)
    print(f"fit.py: {method} on {reconstructor.device}; results in {output}", file=sys.stderr)
    report = reconstructor.reconstruct_to_folder(image, output, refine=cfg.refine)
    print(f"fit.py: {report.summary(output)}")
    if tracker is not None:
        log_fit(tracker, [(str(outcome.source), outcome.folder) for outcome in report.written], len(report.failed))
        close_loggers([tracker])
    sys.exit(report.exit_status)


if __name__ == "__main__":
    main()
