"""fastganfit: GANFit-style single-image 3D face reconstruction with PyTorch Lightning.

``fastganfit.FaceReconstructor`` (:mod:`fastganfit.fitting.reconstructor`) is the Python front door; it is imported
on first use, so ``import fastganfit`` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["FaceReconstruction", "FaceReconstructor", "__version__"]

#: Names exported lazily -> the module that defines them.
LAZY_EXPORTS = {
    "FaceReconstructor": "fastganfit.fitting.reconstructor",
    "FaceReconstruction": "fastganfit.fitting.reconstructor",
}


def __getattr__(name: str) -> Any:
    if name in LAZY_EXPORTS:
        from importlib import import_module

        return getattr(import_module(LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'fastganfit' has no attribute {name!r}")
