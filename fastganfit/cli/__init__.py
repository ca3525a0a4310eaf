"""Command-line entry points (Hydra): the only modules that compose configuration.

``train``, ``fit`` and ``evaluate`` are reachable three ways: ``python train.py ...`` (thin scripts at the
repository root), ``python -m fastganfit.cli.train ...`` and the console script ``fastganfit-train ...``; the data
commands two: ``python -m fastganfit.cli.prepare ...`` and ``fastganfit-prepare ...`` (likewise ``synthetic``,
``uv_shards`` / ``fastganfit-uv-shards``, ``photo_uv_shards`` / ``fastganfit-photo-uv-shards``). Each has an
entry config in the package's ``fastganfit/conf/`` folder (``train.yaml``, ..., ``photo_uv_shards.yaml``), which
ships inside the wheel, so an installed package works from any directory.
"""

import warnings
from pathlib import Path

# The entry configs' hydra.searchpath names a user config folder (fitting.package_config.local_paths_files) that
# most users never create: Hydra's warning that it does not exist is noise.
warnings.filterwarnings("ignore", message=r"provider=hydra\.searchpath in main, path=.* is not available")

#: The package's ``conf/`` folder (an absolute path: Hydra resolves a relative one against the module's package,
#: which would differ between ``python train.py`` and ``python -m fastganfit.cli.train``).
CONFIG_DIR = (Path(__file__).resolve().parent.parent / "conf").resolve()
