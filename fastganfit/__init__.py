"""fastganfit: GANFit-style single-image 3D face reconstruction with PyTorch Lightning."""

__version__ = "0.1.0"
