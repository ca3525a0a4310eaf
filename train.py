"""Training entry point (Hydra): ``python train.py experiment=...``.

The Fast-GANFit regressor, its losses and LightningModule are not built yet; until they are, this
entry point composes its configuration (so config errors show up early) and exits with status 2.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    del cfg
    print(
        "error: training is not available yet (the regressor and LightningModule are still to be built). "
        "Meanwhile `python scripts/render_random_faces.py` renders random faces with the face model.",
        file=sys.stderr,
    )
    sys.exit(2)


if __name__ == "__main__":
    main()
