"""Face models: the 3D morphable model, camera and illumination."""
