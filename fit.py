"""Reconstruction entry point (Hydra): ``python fit.py ckpt=... image=...``.

Regression, GANFit optimisation and GANFit++ refinement are not built yet; until they are, this entry
point composes its configuration and exits with status 2.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="fit", version_base="1.3")
def main(cfg: DictConfig) -> None:
    del cfg
    print("error: fitting is not available yet (it needs the trained regressor).", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
