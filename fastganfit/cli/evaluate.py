"""Evaluate reconstructions on a benchmark: ``python evaluate.py benchmark=micc|now data_dir=... ...``.

A thin Hydra entry point: the benchmark named by ``benchmark=`` is instantiated from
``conf/benchmark/<name>.yaml`` and run; ``results.md`` and ``results.json`` are written to
``output_dir`` (default: the Hydra run folder); ``logger=wandb`` also logs them to a W&B run grouped with
the training run of ``ckpt`` (docs/tracking.md). Any object with ``run() -> EvaluationReport`` can be
added as a benchmark config.

Component overrides (``identity.weights=PATH``, ``renderer.backend=torch``) apply on top of the model of a
benchmark's ``ckpt`` (benchmark=synthetic, which builds it with :class:`fastganfit.FaceReconstructor`, reading the
checkpoint once); an option other than the trained one (``identity=...``) is an error, and so is any component
override for a benchmark without a model (micc, now). See :mod:`fastganfit.cli.components`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from fastganfit.benchmarks.report import write_report
from fastganfit.cli import CONFIG_DIR
from fastganfit.cli.components import checkpoint_request, component_overrides
from fastganfit.cli.exit_status import exit_status
from fastganfit.regression.component_values import ComponentRequest
from fastganfit.training.loggers import close_loggers
from fastganfit.training.tracking import log_evaluation, open_run

log = logging.getLogger(__name__)


def model_values(cfg: DictConfig, overrides: Sequence[str]) -> dict[str, Any]:
    """``{"model_values": ComponentRequest}`` for the benchmark's constructor when ``overrides`` name components
    (none: ``{}``): the values to set on its checkpoint's components and the options, checked against them when the
    benchmark reads the checkpoint (:class:`~fastganfit.FaceReconstructor`). ``ValueError`` for any component
    override when the benchmark has no ckpt."""
    choices, values = component_overrides(overrides)
    if not choices and not values:
        return {}
    if "ckpt" not in cfg.benchmark:
        given = choices + [f"{key}={value}" for key, value in values.items()]
        raise ValueError(
            f"{' '.join(given)}: this benchmark scores reconstructions already written and builds no model; "
            "component overrides apply to a ckpt's model (benchmark=synthetic)"
        )
    return {"model_values": ComponentRequest(*checkpoint_request(cfg, overrides))}


@exit_status
@hydra.main(config_path=str(CONFIG_DIR), config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Instantiate ``cfg.benchmark``, run it, print the table and write the results files."""
    try:
        tracker = open_run(cfg, "evaluate", cfg.get("ckpt"), HydraConfig.get().runtime.choices.get("benchmark"))
        benchmark = instantiate(cfg.benchmark, **model_values(cfg, HydraConfig.get().overrides.task))
        report = benchmark.run()
    except (InstantiationException, ValueError, FileNotFoundError, MissingMandatoryValue) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ else error
        print(f"evaluate.py: error: {cause}", file=sys.stderr)
        sys.exit(2)
    output_dir = Path(cfg.output_dir) if cfg.output_dir else Path(HydraConfig.get().runtime.output_dir)
    markdown, json_path = write_report(report, output_dir)
    print(report.to_markdown())
    log.info("wrote %s and %s", markdown, json_path)
    if tracker is not None:
        log_evaluation(tracker, report)
        close_loggers([tracker])


if __name__ == "__main__":
    main()
