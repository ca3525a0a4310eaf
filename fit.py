"""Reconstruction entry point: ``python fit.py [overrides]`` (see :mod:`fastganfit.cli.fit`)."""

from fastganfit.cli.fit import main

if __name__ == "__main__":
    main()
