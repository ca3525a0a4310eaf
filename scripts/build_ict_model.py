"""Build ``fastganfit/assets/ict_face.npz`` from an ICT-FaceKit checkout or archive.

Usage: python scripts/build_ict_model.py [SOURCE] [--output PATH]
SOURCE defaults to ../shared/assets/ict-facekit.tar.xz next to the repository.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fastganfit.assetbuild.ict import (  # noqa: E402
    NUM_IDENTITY_MODES,
    build_ict_arrays,
    quantisation_error_mm,
    to_storage,
)

DEFAULT_SOURCE = REPO.parent / "shared" / "assets" / "ict-facekit.tar.xz"
DEFAULT_OUTPUT = REPO / "fastganfit" / "assets" / "ict_face.npz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    try:
        with tqdm(total=NUM_IDENTITY_MODES + 53, desc="ICT meshes", unit="mesh") as bar:
            arrays = build_ict_arrays(args.source, progress=lambda _: bar.update())
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stored = to_storage(arrays)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.output.parent, suffix=".npz")
    os.close(fd)
    np.savez_compressed(tmp, **stored)
    os.replace(tmp, args.output)
    print(
        f"wrote {args.output} ({args.output.stat().st_size / 1e6:.1f} MB): {stored['mean'].shape[0]} vertices, "
        f"{stored['faces'].shape[0]} triangles, {stored['shape_basis'].shape[0]} identity modes, "
        f"{stored['expression_basis'].shape[0]} expressions; float16 max error "
        f"{quantisation_error_mm(arrays):.4f} mm"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
