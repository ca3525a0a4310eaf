"""Face models: the 3D morphable model (``morphable``), its loaders for BFM 2009/2017/2019, FLAME and ``.npz``
(``loaders``) and mesh geometry (``geometry``). Cameras and lighting live in ``fastganfit.render``."""
