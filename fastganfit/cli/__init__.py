"""Command-line entry points (Hydra): the only modules that compose configuration.

Each is reachable three ways: ``python train.py ...`` (thin scripts at the repository root),
``python -m fastganfit.cli.train ...`` and the console script ``fastganfit-train ...`` (likewise ``fit``,
``evaluate``, ``prepare``, ``synthetic``, ``uv_shards``; ``photo_uv_shards`` as ``python -m`` and
``fastganfit-photo-uv-shards``). Configs live in the repository's ``conf/`` folder.
"""

from pathlib import Path

#: The repository's ``conf/`` folder (an absolute path: Hydra resolves a relative one against the module's package,
#: which would differ between ``python train.py`` and ``python -m fastganfit.cli.train``).
CONFIG_DIR = (Path(__file__).resolve().parent / "../../conf").resolve()
