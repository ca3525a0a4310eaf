"""Evaluate reconstructions on a benchmark: ``python evaluate.py benchmark=micc|now data_dir=... ...``.

A thin Hydra entry point: the benchmark named by ``benchmark=`` is instantiated from
``conf/benchmark/<name>.yaml`` and run; ``results.md`` and ``results.json`` are written to
``output_dir`` (default: the Hydra run folder); ``logger=wandb`` also logs them to a W&B run grouped with
the training run of ``ckpt`` (docs/tracking.md). Any object with ``run() -> EvaluationReport`` can be
added as a benchmark config.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from fastganfit.benchmarks.report import write_report
from fastganfit.cli import CONFIG_DIR
from fastganfit.training.loggers import close_loggers
from fastganfit.training.tracking import log_evaluation, open_run

log = logging.getLogger(__name__)


@hydra.main(config_path=str(CONFIG_DIR), config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Instantiate ``cfg.benchmark``, run it, print the table and write the results files."""
    try:
        tracker = open_run(cfg, "evaluate", cfg.get("ckpt"))
        benchmark = instantiate(cfg.benchmark)
        report = benchmark.run()
    except (InstantiationException, ValueError, FileNotFoundError) as error:
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
