"""The face-sample shard schema shared by ``prepare`` (real photos), ``synthetic`` and the DataModule.

Each webdataset sample (shards named ``{prefix}-{index:06d}.tar``) holds:

=====================  =====================================================================================
member                 content
=====================  =====================================================================================
``jpg``                the aligned face crop, RGB, ``crop_size`` x ``crop_size`` (224 by default)
``landmarks.npy``      ``[68, 2]`` float32, iBUG-68 landmarks in crop pixels (pixel centres at integers)
``json``               metadata: ``source`` (input path or generator), ``box`` (detector box in the source
                       image, ``[x0, y0, x1, y1]``), ``crop_transform`` (2x3 affine from source pixels to crop
                       pixels), ``crop_size``, ``landmarker`` (``dlib68`` / ``fan`` / ``synthetic``)
``params.npz``         synthetic only: ground-truth ``shape``, ``expression``, ``texture`` (latent), ``camera``,
                       ``light`` coefficients (each 1-D float32)
``vertices.npy``       synthetic only: ``[V, 3]`` float32 ground-truth vertices in mm, model frame
=====================  =====================================================================================

Crops are aligned to :func:`fastganfit.perception.crop_template.crop_template`: the landmarks of the mean
face seen by the default camera, so an untrained regressor (mean face, zero camera) already overlays an aligned crop.
"""

from __future__ import annotations

IMAGE_MEMBER = "jpg"
LANDMARKS_MEMBER = "landmarks.npy"
METADATA_MEMBER = "json"
PARAMS_MEMBER = "params.npz"
VERTICES_MEMBER = "vertices.npy"
