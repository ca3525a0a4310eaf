"""Run a Hydra data command (fastganfit.cli.prepare | synthetic | uv_shards) in-process: its entry config composed
with command-line overrides, then the command's own ``run`` behind the same exit handling as its console script."""

from __future__ import annotations

from types import ModuleType

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from fastganfit.cli import CONFIG_DIR
from fastganfit.cli.options import run_command


def compose_command(config_name: str, *overrides: str) -> DictConfig:
    """``conf/<config_name>.yaml`` with ``overrides`` (``key=value``), as the command line composes it."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name, overrides=list(overrides))


def command_status(module: ModuleType, config_name: str, *overrides: str) -> int:
    """The exit status of ``module``'s command run with ``overrides`` (what its ``main`` would exit with)."""
    with pytest.raises(SystemExit) as stop:
        run_command(module.COMMAND, module.run, compose_command(config_name, *overrides))
    return stop.value.code
