"""Training entry point: ``python train.py [overrides]`` (see :mod:`fastganfit.cli.train`)."""

from fastganfit.cli.train import main

if __name__ == "__main__":
    main()
