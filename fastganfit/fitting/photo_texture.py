"""Photo UV textures for a reconstruction graph: the extractor built from the graph's own face model, camera,
lighting and rasteriser, at its texture model's resolution, and the fit-quality numbers of a fitted batch."""

from __future__ import annotations

from torch import Tensor

from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.texture.photo_uv import PhotoTextureExtractor


def photo_texture_extractor(graph: FaceReconstructionGraph, resolution: int | None = None) -> PhotoTextureExtractor:
    """A :class:`PhotoTextureExtractor` for ``graph`` on its device; ``resolution`` defaults to the texture model's."""
    renderer = graph.renderer
    side = int(resolution or graph.texture.resolution)
    extractor = PhotoTextureExtractor(graph.model, renderer.camera, renderer.lighting, side, backend=renderer.backend)
    return extractor.to(graph.device)


def coverage_fraction(confidence: Tensor, extractor: PhotoTextureExtractor) -> float:
    """The fraction of the face model's UV map that ``confidence [..., 1, R, R]`` covers (confidence-weighted)."""
    return float(confidence.mean() / extractor.coverage.mean())


def photometric_error(image: Tensor, render: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute colour difference ``[B]`` between ``image`` and ``render [B, 3, H, W]`` over ``mask [B, 1, H, W]``
    (in [0, 1] units; 1 where nothing is drawn)."""
    covered = mask.sum((1, 2, 3))
    error = ((image - render).abs().mean(1, keepdim=True) * mask).sum((1, 2, 3)) / covered.clamp(min=1.0)
    return error.where(covered > 0, error.new_ones(()))
