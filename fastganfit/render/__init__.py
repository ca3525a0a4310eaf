"""Differentiable rendering of textured face meshes."""
