"""Benchmark of the MICC evaluation on face meshes, CPU: seconds per template registration and per mesh pair.

Run from the repository root with one thread:
``OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/evaluate.py`` (about 3 minutes on a quiet core).
Writes the ``evaluate`` section of BENCHMARKS.md.

Meshes: the template is the ICT face (``fastganfit/assets/ict_face.npz``: 9,409 vertices, 18,460 triangles
of 0.2 to 6 mm, the MICC default). Each scan is an ICT face of random identity and expression, subdivided
once to MICC's density (73,840 triangles), with a smooth 0.3 mm relief and 0.05 mm noise along the normals
that the template cannot reproduce exactly, moved by a random similarity. Reconstructions are ICT faces of
other random identities (the template's topology) scored against each scan's registration. Times are CPU
seconds of this process on one thread (``time.process_time``), which other jobs on a shared machine do not
inflate the way they do the wall clock.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import trimesh.remesh
from common import write_section

from fastganfit.benchmarks.micc import Registration, load_template, register_scan
from fastganfit.benchmarks.micc_protocols import FaceMesh, micc_pair_error
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.geometry.closest_point import TriangleMesh
from fastganfit.geometry.nicp import vertex_normals
from fastganfit.geometry.procedural_meshes import random_similarity

NUM_SCANS = 2
RECONSTRUCTIONS_PER_SCAN = 3
#: A full MICC run: 53 subjects x 2 frontal scans registered; 53 x 3 settings x 2 scans pairs.
FULL_RUN_REGISTRATIONS, FULL_RUN_PAIRS = 106, 318


def cpu_seconds(fn: Callable[[], object]) -> tuple[float, object]:
    """CPU seconds of this process for one call of ``fn`` and its result."""
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def random_face(model: MorphableModel, seed: int, expression_scale: float = 0.0) -> np.ndarray:
    """Vertices ``[V, 3]`` (mm, float64) of an ICT face with ``N(0, 1)`` identity coefficients."""
    generator = torch.Generator().manual_seed(seed)
    shape = torch.randn(1, model.num_shape, generator=generator)
    expression = expression_scale * torch.rand(1, model.num_expression, generator=generator)
    with torch.no_grad():
        return model(shape, expression)[0].double().numpy()


def densified_scan(model: MorphableModel, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic MICC-like scan: ``vertices [T, 3]``, ``faces [73840, 3]``, ``landmarks [68, 3]`` (mm)."""
    faces = model.faces.numpy()
    vertices, scan_faces = trimesh.remesh.subdivide(random_face(model, seed, expression_scale=0.3), faces)
    normals = vertex_normals(vertices, scan_faces)
    rng = np.random.default_rng(seed)
    relief = 0.3 * np.sin(vertices[:, 0] / 9.0) * np.sin(vertices[:, 1] / 11.0) + rng.normal(0, 0.05, len(vertices))
    vertices = vertices + relief[:, None] * normals
    # subdivide keeps the original vertices first, so the template's landmark indices still apply.
    landmarks = vertices[model.landmark_indices.numpy()]
    moved = random_similarity(seed, max_angle_deg=15)
    return moved.apply(vertices), scan_faces, moved.apply(landmarks)


def closest_point_rows(template: tuple[np.ndarray, np.ndarray, np.ndarray], scan: tuple) -> list[str]:
    """CPU seconds of one closest-point query of the template's vertices on the scan and on the template."""
    vertices, faces, _ = template
    rows = []
    for name, mesh_vertices, mesh_faces in (("ICT face", vertices, faces), ("scan", scan[0], scan[1])):
        mesh = TriangleMesh(mesh_vertices, mesh_faces)
        queries = mesh_vertices[: len(vertices)] + np.random.default_rng(0).normal(0, 1.0, (len(vertices), 3))
        seconds, _ = cpu_seconds(lambda m=mesh, q=queries: m.closest_points(q))
        rows.append(f"| closest points of {len(queries):,} points (1 mm off) on the {name} "
                    f"({len(mesh_faces):,} triangles) | {seconds:.3f} | |")  # fmt: skip
    return rows


def main() -> None:
    """Time the registrations and the pairs, print the table and write it to BENCHMARKS.md."""
    load_before = os.getloadavg()[0]
    model = MorphableModel.ict()
    template = load_template(None, None)
    TriangleMesh(template[0], template[1]).closest_points(template[0][:3])  # compiled before timing
    scans = [densified_scan(model, seed) for seed in range(NUM_SCANS)]
    registrations: list[Registration] = []
    registration_seconds = []
    for scan in scans:
        seconds, registration = cpu_seconds(lambda s=scan: register_scan(*s, template))
        registration_seconds.append(seconds)
        registrations.append(registration)
    pair_seconds: dict[str, list[float]] = {"ganfit": [], "deep3dface": [], "any_topology": []}
    pair_results: dict[str, list] = {protocol: [] for protocol in pair_seconds}
    for scan_index, registration in enumerate(registrations):
        for k in range(RECONSTRUCTIONS_PER_SCAN):
            vertices = random_similarity(100 + k, max_angle_deg=10).apply(random_face(model, 10 + 3 * scan_index + k))
            reconstruction = FaceMesh.with_landmark_vertices(vertices, template[1], template[2])
            for protocol in pair_seconds:
                seconds, result = cpu_seconds(
                    lambda r=reconstruction, g=registration.mesh, p=protocol: micc_pair_error(r, g, p)
                )
                pair_seconds[protocol].append(seconds)
                pair_results[protocol].append(result)
    rows = [
        f"| template registration (landmark similarity + non-rigid ICP), {len(template[1]):,} triangles onto "
        f"{len(scans[0][1]):,} | {statistics.median(registration_seconds):.1f} | "
        f"{', '.join(f'{s:.1f}' for s in registration_seconds)} s |"
    ]
    for protocol, seconds in pair_seconds.items():
        steps = [
            f"{r.reconstruction_iterations}" + ("" if r.gt_iterations is None else f"+{r.gt_iterations}")
            for r in pair_results[protocol]
        ]
        errors = [r.error for r in pair_results[protocol]]
        rows.append(f"| MICC pair, `protocol={protocol}`, 18,460 vs 18,460 triangles | "
                    f"{statistics.median(seconds):.2f} | {min(seconds):.2f}-{max(seconds):.2f} s; "
                    f"errors {min(errors):.2f}-{max(errors):.2f} mm; ICP steps (reconstruction+ground truth) "
                    f"{', '.join(steps)} |")  # fmt: skip
    rows += closest_point_rows(template, scans[0])
    full_run = FULL_RUN_REGISTRATIONS * statistics.median(registration_seconds) + FULL_RUN_PAIRS * statistics.median(
        pair_seconds["ganfit"]
    )
    load_after = os.getloadavg()[0]
    body = f"""
Face meshes: the ICT template against {NUM_SCANS} synthetic scans of MICC's density (ICT faces of random identity
and expression subdivided to {len(scans[0][1]):,} triangles, with a 0.3 mm relief and 0.05 mm noise;
bench/evaluate.py's docstring), {RECONSTRUCTIONS_PER_SCAN} reconstructions (other random ICT identities) per
scan. CPU seconds of one process on one thread (`time.process_time`; OMP_NUM_THREADS=1 MKL_NUM_THREADS=1, checked
by the script, and torch.set_num_threads(1); threadpoolctl is not installed); median over the runs, then the range.

| step | CPU seconds (median) | runs |
|---|---|---|
{chr(10).join(rows)}

Full MICC run estimate ({FULL_RUN_REGISTRATIONS} registrations + {FULL_RUN_PAIRS} `ganfit` pairs, one core):
{full_run / 60:.0f} CPU minutes (registrations are cached in `benchmark.cache_dir`; `benchmark.workers` spreads
scans over cores). The machine is shared with other jobs (load average {load_before:.1f} at the start,
{load_after:.1f} at the end, 2 cores): CPU seconds are less affected than the wall clock, not immune.
"""
    write_section("evaluate", body, "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/evaluate.py")
    print(body)


if __name__ == "__main__":
    if any(os.environ.get(name) != "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        raise SystemExit("bench/evaluate.py measures one thread: run it with OMP_NUM_THREADS=1 MKL_NUM_THREADS=1")
    torch.set_num_threads(1)
    main()
