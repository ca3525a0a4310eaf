"""Evaluation entry point: ``python evaluate.py [overrides]`` (see :mod:`fastganfit.cli.evaluate`)."""

from fastganfit.cli.evaluate import main

if __name__ == "__main__":
    main()
