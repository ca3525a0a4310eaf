"""Perception networks: face recognition (identity) and face-chip alignment."""
