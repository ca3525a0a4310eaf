"""Perception networks: face recognition (identity) and face-chip alignment."""

from fastganfit.perception.arcface import IResNet, build_iresnet, load_arcface
from fastganfit.perception.dlib_resnet import DlibResNet, load_dlib_resnet
from fastganfit.perception.face_chip import ArcFaceChipAligner, DlibChipAligner
from fastganfit.perception.identity import IdentityNet, IdentityOutput, arcface_identity, dlib_identity

__all__ = [
    "ArcFaceChipAligner",
    "DlibChipAligner",
    "DlibResNet",
    "IResNet",
    "IdentityNet",
    "IdentityOutput",
    "arcface_identity",
    "build_iresnet",
    "dlib_identity",
    "load_arcface",
    "load_dlib_resnet",
]
