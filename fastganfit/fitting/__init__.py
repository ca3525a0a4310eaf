"""Reconstruction of photos: regression (Fast-GANFit), GANFit optimisation and GANFit++ refinement, exports."""
