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
``params.npz``         optional (synthetic faces, scans): ground-truth ``shape``, ``expression``, ``texture``
                       (latent), ``camera``, ``light`` coefficients (each 1-D float32)
``vertices.npy``       optional, with ``params.npz``: ``[V, 3]`` float32 ground-truth vertices in mm, model frame
=====================  =====================================================================================

Ground truth (``params.npz`` and ``vertices.npy``, written together) is what the supervised 3D terms compare with
(:mod:`fastganfit.reconstruction.supervised`, ``loss.supervised.*``; batches carry it as ``params``, ``vertices`` and
``has_ground_truth``). It may come from any face model, with these conventions:

- ``vertices.npy``: the face in millimetres, in the model frame (no camera pose: the camera parameters carry it),
  one row per vertex of the *training* face model's topology, in its order, since the vertex term compares
  corresponding vertices. Data from scans or another model: register the training model's template to each scan
  first (e.g. :func:`fastganfit.geometry.nicp.nonrigid_icp`), and write the registered vertices. The vertex term with
  ``similarity: true`` ignores the scan's scale, rotation and placement.
- ``params.npz``: one 1-D array per group named as in :data:`fastganfit.params.GROUPS` (``shape``, ``expression``,
  ``texture``, ``camera``, ``light``), the coefficients of the face model, texture model, camera and lighting that
  rendered the sample. The parameter term (``loss.supervised.groups``) compares only the groups it lists, and
  they must have the training model's sizes. The shard writer (``encode_face_sample``) wants both members and all
  five groups: with ground truth from another model, write its coefficients (or zeros), keep the parameter term
  off and use the vertex term.

Crops are aligned to :func:`fastganfit.perception.crop_template.crop_template`: the landmarks of the mean
face seen by the default camera, so an untrained regressor (mean face, zero camera) already overlays an aligned crop.
"""

from __future__ import annotations

IMAGE_MEMBER = "jpg"
LANDMARKS_MEMBER = "landmarks.npy"
METADATA_MEMBER = "json"
PARAMS_MEMBER = "params.npz"
VERTICES_MEMBER = "vertices.npy"
