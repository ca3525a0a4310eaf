"""Run set-up shared by the training entry points (no Hydra here)."""

from __future__ import annotations

import netrc
import os
import sys


def _has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def prepare_logger_environment(logger_target: str | None) -> None:
    """Before building a W&B logger: without credentials, switch W&B to offline mode (the run is still
    written locally and can be uploaded later with ``wandb sync``) and say so."""
    if logger_target and logger_target.endswith("WandbLogger") and not _has_wandb_credentials():
        os.environ.setdefault("WANDB_MODE", "offline")
        print("W&B: no API key found, logging offline (upload later with `wandb sync`)", file=sys.stderr)
