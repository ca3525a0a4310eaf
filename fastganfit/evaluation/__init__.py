"""Evaluation: mesh distances, alignment, ICP and the MICC / NoW / synthetic protocols."""
